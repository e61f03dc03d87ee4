"""Whether this serving process is draining: told to stop, still serving, no longer ready.

NOTE: process-wide, as the signal that starts it is: the serving loop (`app.supervisor`) sets
it and `/readyz` reads it, and one process serves one app.
"""

import threading

_draining = threading.Event()


def start_draining() -> None:
    """Say not ready from now on (the process is about to stop)."""
    _draining.set()


def is_draining() -> bool:
    """Tell whether a stop signal came and the process is waiting out its drain."""
    return _draining.is_set()
