"""The Bayesian MLP: an MLP whose dropout stays on at inference (MC dropout)."""

from collections.abc import Sequence

import torch
from torch import nn


class BayesianMLP(nn.Module):
    """Linear -> ReLU -> Dropout blocks, then a Linear with one output (the readmission logit)."""

    def __init__(self, in_features: int, hidden: int | Sequence[int], p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout p must be in [0, 1), got {p}")
        widths = [hidden] if isinstance(hidden, int) else list(hidden)
        if not widths or any(w < 1 for w in widths):
            raise ValueError(f"hidden widths must be positive, got {widths}")
        self.in_features = in_features
        self.hidden = tuple(widths)
        self.p = p
        layers: list[nn.Module] = []
        width_in = in_features
        for width in widths:
            layers += [nn.Linear(width_in, width), nn.ReLU(), nn.Dropout(p)]
            width_in = width
        # NOTE: no dropout after the last layer: the output unit is never dropped.
        layers.append(nn.Linear(width_in, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits of shape `[B]`."""
        return self.net(x).squeeze(-1)
