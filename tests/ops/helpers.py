"""Reading /metrics the way Prometheus does, and talking to a real web process."""

import json
import sys
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import wait_for
from tests.system.procs import free_port


def parse_metrics(text: str) -> dict:
    """{(sample name, frozenset of labels): value}, parsed by prometheus-client's own parser."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(metrics: dict, name: str, **labels) -> float | None:
    return metrics.get((name, frozenset(labels.items())))


def http_get(url: str, headers: dict | None = None) -> tuple[int, str]:
    """(status, body) of a GET; error statuses are answers too."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def http_json(url: str) -> tuple[int, dict]:
    status, body = http_get(url)
    return status, json.loads(body)


def start_web(processes, **env) -> str:
    """``manage.py serve`` serving pizzaq, as the deployment guide runs it; returns its base URL."""
    port = free_port()
    processes.start_command([sys.executable, "manage.py", "serve", "--port", str(port)], "web", **env)
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(f"{base}/healthz"), timeout=30, interval=0.2, message="the web server to answer")
    return base


def _answers(url: str) -> bool:
    try:
        return http_get(url)[0] == 200
    except OSError:
        return False
