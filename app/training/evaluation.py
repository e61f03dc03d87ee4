"""MC-dropout scoring of encoded encounters with the serving engine, and its summaries."""

from dataclasses import dataclass

import numpy as np
import torch

from app.inference import BayesianMLP, MCDropoutEngine


@dataclass(frozen=True)
class MCScores:
    """Uncalibrated MC-mean probability and MC std per encounter, and the share of passes at or
    above the logit cut when one was given."""

    mean: np.ndarray
    std: np.ndarray
    share_above: np.ndarray | None = None
    n_samples: int = 0  # the passes behind each share


def mc_scores(
    model: BayesianMLP, x: np.ndarray, *, n_samples: int, seed: int, cut: float | None = None
) -> MCScores:
    """Score encounters with the same MC-dropout engine the service uses (on the CPU)."""
    # NOTE: the CPU keeps offline numbers reproducible bit for bit wherever they are computed.
    engine = MCDropoutEngine(model, device="cpu", default_seed=seed)
    result = engine.predict(torch.from_numpy(x), n_samples=n_samples, seed=seed, cut=cut)
    above = result.share_above
    return MCScores(
        mean=result.mean.double().numpy(),
        std=result.std.double().numpy(),
        share_above=None if cut is None or above is None else above.double().numpy(),
        n_samples=n_samples,
    )
