"""How deep a JSON text nests, measured before it is parsed.

json.loads recurses once a level, so a body nested thousands deep raises RecursionError
before any check of the parsed value could refuse it. This measures the raw text instead,
in a few whole-text passes that all run in C (a bulk body may be 16 MB)."""

import json
from itertools import accumulate

# What the depth scan keeps of a body: quotes, brackets, and backslashes with every other
# character an escape may start with, so that each backslash still precedes what it escapes.
ESCAPES = b"\\/bfnrtu"
NOT_SCANNED = bytes(sorted(set(range(256)) - set(b'"[]{}' + ESCAPES)))
# Openers become 1 and closers -1 (as signed bytes): the running sum is the depth.
DEPTH_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def _as_utf8(raw: bytes) -> bytes:
    """``raw`` as UTF-8, so the scan reads what json.loads parses (it decodes UTF-16 and -32 too)."""
    encoding = json.detect_encoding(raw)
    if encoding.startswith("utf-8"):
        return raw
    return raw.decode(encoding, "surrogatepass").encode("utf-8", "surrogatepass")


def _depth_steps(raw: bytes) -> bytes:
    """The brackets of the UTF-8 JSON text ``raw`` outside its strings, as DEPTH_STEPS."""
    # Whole-body passes only, all in C: a bulk body may be 16 MB.
    kept = raw.translate(None, NOT_SCANNED)
    # Escaped backslashes first, so that in \\" the quote still ends its string.
    kept = kept.replace(b"\\\\", b"").replace(b'\\"', b"")
    steps = kept.translate(DEPTH_STEPS, ESCAPES)
    # What is left of the quotes alternately opens and closes a string, so every other
    # piece between them is outside one; dropping the many bracketless strings first is cheap.
    return b"".join(steps.replace(b'""', b"").split(b'"')[::2])


def nests_deeper(raw: bytes, limit: int) -> bool:
    """Whether the JSON text ``raw`` nests arrays and objects more than ``limit`` deep."""
    steps = memoryview(_depth_steps(_as_utf8(raw))).cast("b")
    # In C too, and it stops at the first level too deep.
    return any(map(limit.__lt__, accumulate(steps)))
