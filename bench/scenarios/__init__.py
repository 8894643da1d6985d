"""One module per scenario; each has ``run(queues, options) -> dict`` (its JSON results)."""
