"""Workers run on threads of the test process."""

import threading

import pytest

from workers.runner import Runner


@pytest.fixture
def start_worker(transactional_db, pizzaq_settings):
    """Start a Runner on a thread of this process; every one is stopped at the end."""
    pizzaq_settings(heartbeat_interval=0.2, poll_interval=0.1, worker_timeout=2, retry_base_delay=0.05,
                    retry_max_delay=0.1)
    started = []

    def start(name: str = "S0", concurrency: int = 2) -> Runner:
        runner = Runner(name, concurrency, grace=1, prefetch=0, rejoin_delay=0.2)
        thread = threading.Thread(target=runner.run, name=f"runner-{name}", daemon=True)
        thread.start()
        started.append((runner, thread))
        return runner

    yield start
    for runner, thread in started:
        runner.request_stop("the test is over")
        thread.join(15)
        assert not thread.is_alive(), "the worker stopped when asked"
