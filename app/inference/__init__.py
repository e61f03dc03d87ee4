"""Inference: model loading, the MC-dropout engine and the micro-batcher (no web framework here).

NOTE: the names below load on first use, so a process that needs only `app.inference.prediction`
(the review-queue writer's child) never imports torch.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.inference.batcher import MicroBatcher, QueueFullError
    from app.inference.engine import MCDropoutEngine
    from app.inference.model import BayesianMLP
    from app.inference.statistics import MCDropoutResult

_HOMES = {
    "BayesianMLP": "app.inference.model",
    "MCDropoutEngine": "app.inference.engine",
    "MCDropoutResult": "app.inference.statistics",
    "MicroBatcher": "app.inference.batcher",
    "QueueFullError": "app.inference.batcher",
}

__all__ = [
    "BayesianMLP",
    "MCDropoutEngine",
    "MCDropoutResult",
    "MicroBatcher",
    "QueueFullError",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(home), name)
