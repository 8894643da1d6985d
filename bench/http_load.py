"""A light HTTP/1.1 load client: keep-alive connections, each sending one request after
another for a fixed time; every response's status and time are kept.

Written on asyncio streams with the request's bytes made once, so the client costs the
machine little of what it measures (the server shares its two cores)."""

import asyncio
import json
import time
from dataclasses import dataclass, field


@dataclass
class Load:
    """What the clients saw: completed requests, their statuses, latencies (ms)."""

    seconds: float = 0.0
    latencies_ms: list = field(default_factory=list)
    statuses: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0


def request_bytes(host: str, port: int, path: str, body: dict, token: str) -> bytes:
    data = json.dumps(body).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\nConnection: keep-alive\r\n\r\n")
    return head.encode() + data


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = next((int(line.split(b":", 1)[1]) for line in lines[1:] if line.lower().startswith(b"content-length:")),
                  None)
    if length is None:
        raise RuntimeError("the bench client needs a Content-Length in every response")
    await reader.readexactly(length)
    return status


async def _client(host: str, port: int, request: bytes, until: float, load: Load) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.monotonic() < until:
            sent = time.perf_counter()
            writer.write(request)
            status = await _read_response(reader)
            load.latencies_ms.append((time.perf_counter() - sent) * 1000)
            load.statuses[status] = load.statuses.get(status, 0) + 1
    finally:
        writer.close()


async def _run(host, port, request, clients, seconds) -> Load:
    load = Load()
    started = time.monotonic()
    until = started + seconds
    await asyncio.gather(*(_client(host, port, request, until, load) for _ in range(clients)))
    load.seconds = time.monotonic() - started
    return load


def run(host: str, port: int, path: str, body: dict, token: str, clients: int, seconds: float) -> Load:
    """``clients`` keep-alive connections POSTing ``body`` to ``path`` for ``seconds``."""
    return asyncio.run(_run(host, port, request_bytes(host, port, path, body, token), clients, seconds))
