"""The kind -> callable registry. A handler receives the claimed Order and returns a
JSON-serialisable result; raising marks the attempt failed."""

from dataclasses import dataclass
from typing import Callable


class UnknownKind(LookupError):
    """No handler is registered for this kind."""


@dataclass(frozen=True)
class Handler:
    kind: str
    func: Callable
    # Run the handler inside the completion transaction, so its database side effects
    # commit only if this run still holds the fencing token (at most once). Keep it for
    # short handlers: the transaction stays open while the handler runs.
    atomic: bool = False
    # Lease length for this kind, when it differs from PIZZAQ_VISIBILITY_TIMEOUT.
    visibility_timeout: float | None = None
    # The longest a run may take. Past it the worker stops renewing the lease, so the
    # run counts as stuck and the order is handed to another shop. None: no limit.
    timeout: float | None = None
    # Whether clients may place this kind over the API and the dashboard. Internal kinds
    # (Django tasks) are placed only by Python code that checked what they will run.
    public: bool = True
    # Orders of this kind with one routing key run one at a time, in the order they were
    # placed, across the cluster (orders/sequences.py).
    ordered: bool = False


_registry: dict[str, Handler] = {}


def handler(kind: str, *, atomic: bool = False, visibility_timeout: float | None = None,
            timeout: float | None = None, public: bool = True, ordered: bool = False):
    """Register the decorated function as the handler of ``kind``."""

    def register(func):
        _registry[kind] = Handler(kind, func, atomic, visibility_timeout, timeout, public, ordered)
        return func

    return register


def get_handler(kind: str) -> Handler:
    try:
        return _registry[kind]
    except KeyError:
        raise UnknownKind(f"no handler is registered for kind {kind!r}") from None


def registered_kinds() -> list[str]:
    """The kinds clients may place."""
    return sorted(kind for kind, registered in _registry.items() if registered.public)


def is_public(kind: str) -> bool:
    return kind in _registry and _registry[kind].public


def is_registered(kind: str) -> bool:
    return kind in _registry


def is_ordered(kind: str) -> bool:
    return kind in _registry and _registry[kind].ordered
