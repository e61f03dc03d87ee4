"""Per-row statistics of MC-dropout logits `[rows, N]`: mean, std, its standard error, BALD,
the 5th-95th percentile band of the passes' probabilities and the share of passes at or above
a logit cut (the action threshold), and the result that holds them.

The `[rows, N]` passes run in float32 NumPy on the CPU (torch on CUDA) and the per-row
formulas in float64 NumPy: at small batches a torch operator's dispatch costs more than its
arithmetic. Every quantity is computed row by row, so a row's result does not depend on the
rows beside it (batch invariance, see `app.inference.engine`).
"""

import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import torch

_TINY = 1e-300  # a floor that keeps divisions and logs finite where a value is exactly 0
_LOGIT_LIMIT = 80.0  # exp(80) is finite in float32; sigmoid(+-80) is 1 or 0 there


@dataclass(frozen=True)
class MCDropoutResult:
    """Per-encounter MC-dropout summary; every tensor is `[B]` float32 on the CPU."""

    mean: torch.Tensor
    std: torch.Tensor
    std_standard_error: torch.Tensor
    mutual_information: torch.Tensor
    # The 5th and 95th percentiles of the N passes' probabilities (order statistics, so any
    # monotone calibration maps them to the calibrated passes' percentiles).
    band_low: torch.Tensor
    band_high: torch.Tensor
    n_samples: int
    seed: int
    # The share of the N passes whose logit is at or above the call's `cut` (0 without one):
    # with the cut at the action threshold, the share of passes that would act.
    share_above: torch.Tensor | None = None
    # `[B, width]` float32 eval-mode activations of the last hidden layer, when the CPU engine
    # computed them on its way (no dropout before that layer's output: the shipped model), so
    # the domain guard need not run the layer again. None otherwise (on CUDA the bits would
    # differ from the CPU's, which the guard's thresholds were fitted with).
    hidden: np.ndarray | None = None


def probability(xp: Any, z: Any) -> Any:
    """`sigmoid(z)` in place of `z`, as `1 / (1 + exp(-z))`: accurate for either sign of `z`."""
    # NOTE: the floor only keeps exp finite (sigmoid(-80) is already 0 in float32); elementwise
    # exp and correctly rounded + and / give the same bits at any position of a tensor.
    if xp is np:
        np.maximum(z, -_LOGIT_LIMIT, out=z)
    else:
        z.clamp_min_(-_LOGIT_LIMIT)
    xp.negative(z, out=z)
    xp.exp(z, out=z)
    z += 1.0
    return xp.reciprocal(z, out=z)


def _sample_sums(logits: torch.Tensor, n: int) -> np.ndarray:
    """Per row of logits `[rows, N]`: sums of p, of its entropy, of (p - mean)^4 and (p - mean)^2.

    The `[rows, N]` passes run in float32 with NumPy on the CPU, where an operator on a short
    row costs well under torch's dispatch (the B = 1 case), and with torch on CUDA, where the
    data stays on the device. `logits` is overwritten. Returns `[4, rows]` float32 on the CPU.
    """
    cpu = logits.device.type == "cpu"
    xp: Any = np if cpu else torch
    z: Any = logits.numpy() if cpu else logits
    row_sum: Any = np.add.reduce if cpu else torch.sum  # (x, 1, out=...) means the same to both
    sums: Any = np.empty((4, len(z)), np.float32) if cpu else logits.new_empty((4, len(z)))
    a = xp.abs(z)
    q = xp.negative(a)
    xp.exp(q, out=q)  # exp(-|z|), in (0, 1]
    # NOTE: the Bernoulli entropy is symmetric in z: log1p(exp(-|z|)) + |z| sigmoid(-|z|), with
    # no cancellation at either tail.
    entropy = xp.log1p(q)
    xp.divide(q, xp.add(q, 1.0), out=q)  # sigmoid(-|z|)
    entropy += xp.multiply(a, q, out=a)
    row_sum(entropy, 1, out=sums[1])
    prob = probability(xp, z)
    row_sum(prob, 1, out=sums[0])
    prob -= (sums[0] / n)[:, None]
    deviation2 = xp.square(prob, out=prob)
    row_sum(deviation2, 1, out=sums[3])
    row_sum(xp.square(deviation2, out=deviation2), 1, out=sums[2])
    return sums if cpu else sums.cpu().numpy()


def summarise(logits: torch.Tensor, n: int, cut: float | None = None) -> np.ndarray:
    """Return `[7, rows]` float32 `SUMMARY_FIELDS` from logits `[rows, N]`: mean, std, the
    std's Monte Carlo SE, BALD, the 5th and 95th percentiles of the passes' probabilities and
    the share of passes whose logit is at or above `cut` (0 when `cut` is None).

    `logits` is overwritten.
    """
    band = _band_logits(logits, n)
    above = _share_above(logits, n, cut)
    # NOTE: sums are pairwise over one contiguous row at a time and the per-row formulas are
    # elementwise, so a row's result does not depend on its neighbours. The per-row formulas
    # run in float64 NumPy: on a short vector an operator costs a fraction of torch's dispatch.
    mean, mean_entropy, m4, var = _sample_sums(logits, n) / _divisors(n)
    out = np.empty((len(SUMMARY_FIELDS), len(mean)), dtype=np.float64)
    out[0] = mean
    std = np.sqrt(var, out=out[1])
    # NOTE: delta method: Var(s^2) ~ (m4 - s^4 (N-3)/(N-1)) / N and SE(s) ~ SE(s^2) / (2 s).
    # std == 0 means every deviation is 0, so the numerator is 0 and the floor gives SE 0.
    numerator = np.sqrt(np.maximum(m4 - var * var * ((n - 3) / (n - 1)), 0.0))
    np.divide(numerator, np.maximum(std * (2.0 * math.sqrt(n)), _TINY), out=out[2])
    # NOTE: BALD: the entropy of the mean, -(m log m + (1-m) log(1-m)), minus the mean entropy;
    # |m - [0, 1]| gives m and 1 - m at once, and the floor makes 0 log 0 = 0 without a warning.
    both = np.abs(mean - _ZERO_ONE)
    both *= np.log(np.maximum(both, _TINY))
    minus_entropy_of_mean = np.add.reduce(both, 0)
    np.maximum(np.negative(minus_entropy_of_mean + mean_entropy), 0.0, out=out[3])
    out[4:6] = probability(np, band)
    out[6] = above
    return out.astype(np.float32)


SUMMARY_FIELDS: Final = (
    "mean",
    "std",
    "std_standard_error",
    "mutual_information",
    "band_low",
    "band_high",
    "share_above",
)
BAND_PERCENTILES: Final = (5, 95)


def band_ranks(n: int) -> tuple[int, int]:
    """The 0-based order statistics of N passes that bound the 5th-95th percentile band.

    The lower rank rounds down and the upper one up, so at least 90% of the passes lie inside.
    """
    low, high = BAND_PERCENTILES
    return math.floor(low / 100 * (n - 1)), math.ceil(high / 100 * (n - 1))


def _band_logits(logits: torch.Tensor, n: int) -> np.ndarray:
    """`[2, rows]` float64: each row's logits at the `band_ranks` (selection is row by row)."""
    low, high = band_ranks(n)
    if logits.device.type == "cpu":
        chosen = np.partition(logits.numpy(), (low, high), axis=1)[:, [low, high]]
        return chosen.T.astype(np.float64)
    ends = [torch.kthvalue(logits, rank + 1, dim=1).values for rank in (low, high)]
    return torch.stack(ends).cpu().numpy().astype(np.float64)


def _share_above(logits: torch.Tensor, n: int, cut: float | None) -> np.ndarray:
    """`[rows]` float64: the share of each row's passes whose logit is at or above `cut`."""
    if cut is None:
        return np.zeros(len(logits))
    if logits.device.type == "cpu":
        counts = np.add.reduce(logits.numpy() >= np.float32(cut), 1, dtype=np.int64)
    else:
        counts = (logits >= cut).sum(dim=1).cpu().numpy()
    return np.asarray(counts, dtype=np.float64) / n


_ZERO_ONE = np.array([[0.0], [1.0]])
_DIVISORS: dict[int, np.ndarray] = {}


def _divisors(n: int) -> np.ndarray:
    """`[[N], [N], [N], [N-1]]`: turn the row sums into mean, mean entropy, m4 and variance."""
    divisors = _DIVISORS.get(n)
    if divisors is None:
        divisors = np.array([[n], [n], [n], [n - 1]], dtype=np.float64)
        if len(_DIVISORS) >= 64:
            _DIVISORS.clear()
        _DIVISORS[n] = divisors
    return divisors
