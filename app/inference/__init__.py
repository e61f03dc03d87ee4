"""Inference: model loading, the MC-dropout engine and the micro-batcher (no web framework here)."""

from app.inference.batcher import MicroBatcher, QueueFullError
from app.inference.engine import MCDropoutEngine, MCDropoutResult
from app.inference.model import BayesianMLP

__all__ = [
    "BayesianMLP",
    "MCDropoutEngine",
    "MCDropoutResult",
    "MicroBatcher",
    "QueueFullError",
]
