"""Client sides of the benchmarked queues; each runs in its queue's own virtualenv."""
