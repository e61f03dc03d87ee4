"""The MC-dropout engine: N dropout subnetworks per encounter, exact, seeded and batch-invariant.

Semantics
- Inverted dropout exactly as trained: a unit is kept with probability 1-p and survivors are
  scaled by 1/(1-p). Only dropout is stochastic; Linear and ReLU run as in eval mode. The engine
  copies the weights once at construction into tensors it owns and never touches the module
  again (no `train()`/`eval()`), so concurrent callers are safe.
- A call draws N subnetworks, one keep-mask per dropout layer per sample, from a CPU
  `torch.Generator` seeded with `seed` (the constructor's `default_seed` when None), in layer
  order, `torch.rand(N, width) < 1 - p`. The same seed gives the same subnetworks on any device.
- Outputs per encounter: mean and Bessel-corrected std of the N probabilities
  `sigmoid(logit)`, the Monte Carlo standard error of that std (delta method,
  `sqrt((m4 - s^4 (N-3)/(N-1)) / N) / (2 s)`) and the mutual information (BALD, nats): entropy of
  the mean minus the mean entropy; with a logit `cut` (the action threshold), the share of the
  N passes at or above it.

Speed
- Everything up to the first dropout is deterministic and runs once per encounter, not N times.
- The masks are drawn once per call (and cached for recent `(seed, N)`), never per element. With
  one dropout layer (the shipped model) the mask is folded into the output weights,
  `F[j, n] = keep[n, j] * w_out[j] / (1-p)`, so all N passes are one product `[B,H] x [H,N]`.
  Later dropout layers cost one `[B*S, H] x [H, H']` product per chunk of S samples.
- The statistics of the `[rows, N]` probabilities are `app.inference.statistics`.

Batch invariance (the same encounter gives the same bits alone or inside any batch)
- Every per-encounter quantity is computed row-wise: matrix products whose output row depends
  only on that input row, elementwise operators, and (pairwise) sums over the last dimension of
  a contiguous array.
- BLAS may still change the summation order with the shape: MKL takes a matrix-vector kernel
  for one row on Intel, and on AMD Zen 4 sums the tail rows of a product whose row count is not
  a multiple of four in another order. The CPU path therefore runs every product on a row count
  that is a multiple of `ROW_MULTIPLE` (a chunk is padded with zero rows, `padded_rows`), splits
  batches into such chunks whose sample-chunk size depends on N only, and never uses a
  matrix-vector product (the last Linear is an elementwise product and a row sum). MKL's gemm
  then gives the same row for any such row count and any thread count;
  `tests/inference` checks it, and `check_batch_invariance()` re-checks it on the serving host
  at start-up.
- On CUDA, where cuBLAS picks kernels by shape, every chunk is padded to the same fixed row
  count, so each encounter always runs through identically shaped kernels.
"""

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from app.inference.model import BayesianMLP
from app.inference.statistics import SUMMARY_FIELDS, MCDropoutResult, probability, summarise

DEFAULT_N_SAMPLES = 256
_MASK_CACHE_SIZE = 8
# NOTE: MKL gives a row the same bits in any product whose row count is a multiple of this
# (AMD Zen 4 needs 4, Intel any count >= 2; 8 leaves margin).
ROW_MULTIPLE = 8
_ROWS_ELEMENTS = 1 << 19  # rows per chunk x N: few, large elementwise passes per batch
_SAMPLE_ELEMENTS = 1 << 20  # rows x samples x width of one later-layer product
_MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class _Layer:
    weight_t: torch.Tensor  # [in, out], contiguous
    bias: torch.Tensor  # [out]
    p: float  # dropout after this layer's ReLU; 0.0 when there is none


@dataclass(frozen=True)
class _Masks:
    scaled: tuple[torch.Tensor | None, ...]  # per hidden layer: [N, width] of 0 or 1/(1-p)
    fold: torch.Tensor  # [N, H_last]: last mask times the output weights
    fold_t: torch.Tensor | None  # [H_last, N] contiguous, when one layer is stochastic


def _resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but CUDA is not available")
    return resolved


def _read_layers(
    model: nn.Module, device: torch.device
) -> tuple[list[_Layer], torch.Tensor, torch.Tensor]:
    """Copy the weights of `Linear -> ReLU [-> Dropout]` blocks and of the output Linear."""
    modules = list(model.net) if isinstance(model, BayesianMLP) else list(model.children())
    linears: list[tuple[torch.Tensor, torch.Tensor]] = []
    dropout_after: list[float] = []
    for i, module in enumerate(modules):
        previous = modules[i - 1] if i else None
        if isinstance(module, nn.Linear):
            weight = module.weight.detach().to(device=device, dtype=torch.float32, copy=True)
            bias = (
                module.bias.detach() if module.bias is not None else weight.new_zeros(len(weight))
            )
            linears.append((weight, bias.to(device=device, dtype=torch.float32, copy=True)))
            dropout_after.append(0.0)
        elif isinstance(module, nn.ReLU) and isinstance(previous, nn.Linear):
            continue
        elif isinstance(module, nn.Dropout) and isinstance(previous, nn.ReLU):
            dropout_after[-1] = float(module.p)
        else:
            raise ValueError(
                f"unsupported layer for the MC-dropout engine at position {i}: {module}"
            )
    if not linears or linears[-1][0].shape[0] != 1 or not isinstance(modules[-1], nn.Linear):
        raise ValueError("the network must end with a Linear that has one output")
    hidden = [
        _Layer(w.t().contiguous(), b, p)
        for (w, b), p in zip(linears[:-1], dropout_after[:-1], strict=True)
    ]
    out_w, out_b = linears[-1]
    return hidden, out_w[0].contiguous(), out_b.reshape(1)


class MCDropoutEngine:
    """Monte Carlo dropout over a `BayesianMLP`, without mutating it."""

    def __init__(
        self, model: nn.Module, device: str | torch.device = "auto", *, default_seed: int = 0
    ) -> None:
        self.device = _resolve_device(device)
        self.default_seed = _check_seed(default_seed)
        self._layers, self._out_w, self._out_b = _read_layers(model, self.device)
        if not self._layers:
            raise ValueError("the network needs at least one hidden Linear -> ReLU block")
        self.in_features = self._layers[0].weight_t.shape[0]
        stochastic = [i for i, layer in enumerate(self._layers) if layer.p > 0]
        self._first = stochastic[0] if stochastic else None
        self._cuda = self.device.type == "cuda"
        # NOTE: `_chunk` runs every layer up to the first dropout (all of them without one)
        # exactly as eval mode does; when that reaches the last hidden layer, its activations
        # are the domain guard's input.
        last = len(self._layers) - 1
        self._deterministic_depth = (last if self._first is None else self._first) + 1
        self._keeps_hidden = not self._cuda and self._deterministic_depth == last + 1
        self._cache: OrderedDict[tuple[int, int], _Masks] = OrderedDict()
        self._lock = threading.Lock()

    def predict(
        self,
        x: torch.Tensor,
        *,
        n_samples: int = DEFAULT_N_SAMPLES,
        seed: int | None = None,
        cut: float | None = None,
    ) -> MCDropoutResult:
        """Summarise N dropout subnetworks' probabilities for each row of `x` `[B, in_features]`;
        `cut` is the logit whose share of passes at or above it `share_above` counts."""
        used_seed = self._check_call(x, n_samples, seed)
        if cut is not None and not math.isfinite(cut):
            raise ValueError(f"cut must be a finite logit, got {cut!r}")
        with torch.inference_mode():
            out, hidden = self._run(x, n_samples, used_seed, cut)
        mean, std, se, mi, low, high, _ = torch.from_numpy(out).unbind()
        # NOTE: the summary is float32; a share is a count out of N, so it is given exactly.
        above = torch.from_numpy(np.rint(out[6].astype(np.float64) * n_samples) / n_samples)
        return MCDropoutResult(
            mean=mean,
            std=std,
            std_standard_error=se,
            mutual_information=mi,
            band_low=low,
            band_high=high,
            n_samples=n_samples,
            seed=used_seed,
            share_above=above,
            hidden=hidden,
        )

    def pass_logits(
        self, x: torch.Tensor, *, n_samples: int = DEFAULT_N_SAMPLES, seed: int | None = None
    ) -> np.ndarray:
        """The N passes' logits per row of `x`, `[B, N]` float32: the masks `predict` draws.

        For offline analyses of the passes; serving only needs `predict`'s summaries.
        """
        used_seed = self._check_call(x, n_samples, seed)
        with torch.inference_mode():
            out, _ = self._run(x, n_samples, used_seed, None, raw=True)
        return out.T

    def _check_call(self, x: torch.Tensor, n_samples: int, seed: int | None) -> int:
        """The seed a call uses, once its arguments are checked."""
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
            raise ValueError(f"n_samples must be an integer >= 2, got {n_samples!r}")
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"x must have shape [B, {self.in_features}], got {list(x.shape)}")
        return self.default_seed if seed is None else _check_seed(seed)

    def check_batch_invariance(self, *, n_samples: int = 64, seed: int = 0) -> bool:
        """Return whether encounters get the same bits alone and at any place in a batch here."""
        generator = torch.Generator().manual_seed(seed)
        probe = torch.randn(67, self.in_features, generator=generator)
        batch = self.predict(probe, n_samples=n_samples, cut=0.0)
        for rows in (slice(0, 1), slice(1, 2), slice(37, 40), slice(66, 67)):
            part = self.predict(probe[rows], n_samples=n_samples, cut=0.0)
            for name in SUMMARY_FIELDS:
                if not torch.equal(getattr(part, name), getattr(batch, name)[rows]):
                    return False
        return True

    def _run(
        self, x: torch.Tensor, n: int, seed: int, cut: float | None, *, raw: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Return `[7, B]` float32 (the `SUMMARY_FIELDS`), or `[N, B]` logits when `raw`, and
        `hidden`."""
        x = x.to(device=self.device, dtype=torch.float32)
        batch = x.shape[0]
        masks = self._masks(seed, n) if self._first is not None else None
        rows = _rows_per_chunk(n)
        chunks = [x] if batch <= rows else [x[s : s + rows] for s in range(0, batch, rows)]
        parts, hiddens = [], []
        for chunk in chunks:
            size = chunk.shape[0]
            # NOTE: padding keeps every product at a multiple of `ROW_MULTIPLE` rows on the CPU
            # and at a fixed shape on CUDA (cuBLAS picks kernels by shape).
            target = rows if self._cuda else padded_rows(size)
            if size < target:
                chunk = torch.cat([chunk, chunk.new_zeros(target - size, self.in_features)])
            h = self._deterministic_layers(chunk)
            parts.append(self._chunk(h, n, masks, size, cut, raw))
            if self._keeps_hidden:
                hiddens.append(h[:size].numpy())
        hidden = None
        if hiddens:
            hidden = hiddens[0] if len(hiddens) == 1 else np.concatenate(hiddens)
        if not parts:
            return np.zeros((n if raw else len(SUMMARY_FIELDS), 0), dtype=np.float32), hidden
        return (parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)), hidden

    def _deterministic_layers(self, x: torch.Tensor) -> torch.Tensor:
        """Every layer up to the first dropout (all of them without one), as in eval mode."""
        h = x
        for layer in self._layers[: self._deterministic_depth]:
            h = torch.addmm(layer.bias, h, layer.weight_t).relu_()
        return h

    def _chunk(
        self,
        h: torch.Tensor,
        n: int,
        masks: _Masks | None,
        size: int,
        cut: float | None,
        raw: bool = False,
    ) -> np.ndarray:
        """Return `[7, size]` statistics (`[N, size]` logits when `raw`) for the first `size`
        rows of one (padded) chunk, from its activations `h` after the deterministic layers."""
        first = self._deterministic_depth - 1
        if masks is None:  # no dropout anywhere: every subnetwork is the eval-mode network
            logit = (h * self._out_w).sum(dim=1) + self._out_b
            if raw:
                return logit.cpu().numpy()[None, :size].repeat(n, axis=0)
            out = np.zeros((len(SUMMARY_FIELDS), size), dtype=np.float32)
            if cut is not None:
                out[6] = (logit.cpu().numpy()[:size] >= np.float32(cut)).astype(np.float32)
            out[0] = out[4] = out[5] = probability(torch, logit).cpu().numpy()[:size]
            return out
        if masks.fold_t is not None:
            logits = torch.addmm(self._out_b, h, masks.fold_t)
        else:
            logits = self._later_layers(h, n, masks, first)
        if raw:
            return logits[:size].cpu().numpy().T
        # NOTE: on the CPU the padding rows are dropped before the statistics (NumPy's work is
        # row by row); on CUDA the whole fixed-shape chunk goes through, as the products did.
        if self._cuda:
            return summarise(logits, n, cut)[:, :size]
        return summarise(logits[:size], n, cut)

    def _later_layers(self, h: torch.Tensor, n: int, masks: _Masks, first: int) -> torch.Tensor:
        """Return logits `[rows, N]` when dropout layers follow the first one."""
        rows = h.shape[0]
        widest = max(layer.weight_t.shape[1] for layer in self._layers)
        # NOTE: the sample chunk depends on N only, so each chunk's product has a fixed shape.
        step = max(1, _SAMPLE_ELEMENTS // (_rows_per_chunk(n) * widest))
        logits = torch.empty(rows, n, device=h.device)
        first_mask = masks.scaled[first]
        assert first_mask is not None
        for s0 in range(0, n, step):
            s1 = min(n, s0 + step)
            a = h.unsqueeze(1) * first_mask[s0:s1]  # [rows, S, width]
            for j in range(first + 1, len(self._layers)):
                layer = self._layers[j]
                a = torch.addmm(layer.bias, a.view(-1, a.shape[-1]), layer.weight_t).relu_()
                a = a.view(rows, s1 - s0, -1)
                mask = masks.scaled[j]
                if mask is not None and j < len(self._layers) - 1:
                    a.mul_(mask[s0:s1])
            logits[:, s0:s1] = a.mul_(masks.fold[s0:s1]).sum(dim=-1)
        return logits.add_(self._out_b)

    def _masks(self, seed: int, n: int) -> _Masks:
        """Draw (or reuse) the keep-masks of N subnetworks for a seed."""
        key = (seed, n)
        # NOTE: a hit is one atomic dict read, no lock; the cache keeps the newest draws (FIFO).
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        generator = torch.Generator().manual_seed(seed)
        scaled: list[torch.Tensor | None] = []
        for layer in self._layers:
            if layer.p == 0:
                scaled.append(None)
                continue
            keep = torch.rand(n, layer.weight_t.shape[1], generator=generator) < 1.0 - layer.p
            scaled.append((keep.to(torch.float32) / (1.0 - layer.p)).to(self.device))
        last = scaled[-1]
        fold = self._out_w.expand(n, -1) if last is None else last * self._out_w
        single = sum(mask is not None for mask in scaled) == 1 and last is not None
        masks = _Masks(tuple(scaled), fold.contiguous(), fold.t().contiguous() if single else None)
        with self._lock:
            self._cache[key] = masks
            while len(self._cache) > _MASK_CACHE_SIZE:
                self._cache.popitem(last=False)
        return masks


def padded_rows(rows: int) -> int:
    """The row count a CPU product of `rows` rows runs on: the next multiple of `ROW_MULTIPLE`."""
    return max(ROW_MULTIPLE, -(-rows // ROW_MULTIPLE) * ROW_MULTIPLE)


def _rows_per_chunk(n: int) -> int:
    rows = min(2048, _ROWS_ELEMENTS // n) // ROW_MULTIPLE * ROW_MULTIPLE
    return max(ROW_MULTIPLE, rows)


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= _MAX_SEED:
        raise ValueError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    return seed
