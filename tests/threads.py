"""Racing calls in a test: each in a thread of its own, all let go at the same moment."""

import threading

from django.db import connection


def at_once(*calls) -> list:
    """Run ``calls`` in threads released together by a barrier; their results, in the
    order given. Each thread closes its own database connection. An exception in a call
    is raised here, once every thread has ended."""
    start = threading.Barrier(len(calls))
    results, errors = [None] * len(calls), []

    def run(position, call):
        try:
            start.wait()
            results[position] = call()
        except Exception as error:  # noqa: BLE001 - raised below, in the test's thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(position, call)) for position, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results
