"""Inference: model loading, the MC-dropout engine and the micro-batcher (no web framework here)."""

from app.inference.batcher import MicroBatcher, QueueFullError
from app.inference.engine import MCDropoutEngine
from app.inference.model import BayesianMLP
from app.inference.statistics import MCDropoutResult

__all__ = [
    "BayesianMLP",
    "MCDropoutEngine",
    "MCDropoutResult",
    "MicroBatcher",
    "QueueFullError",
]
