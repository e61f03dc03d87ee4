"""The network's last hidden layer in eval mode, computed from its weights, row by row.

The domain guard scores encounters on these activations; each row's bits depend on that row
only (padding to the engine's row multiple), so a novelty score is the same in any batch.
"""

import numpy as np
import torch
from torch import nn

from app.inference.engine import padded_rows
from app.inference.model import BayesianMLP

HiddenLayers = tuple[tuple[torch.Tensor, torch.Tensor], ...]


def hidden_layers(model: nn.Module) -> HiddenLayers:
    """Each hidden Linear as (contiguous transposed weight, bias), copied from the module."""
    modules = list(model.net) if isinstance(model, BayesianMLP) else list(model.children())
    linears = [m for m in modules if isinstance(m, nn.Linear)]
    layers = []
    for linear in linears[:-1]:
        weight_t = linear.weight.detach().t().contiguous()
        bias = linear.bias if linear.bias is not None else torch.zeros(linear.out_features)
        layers.append((weight_t, bias.detach().clone()))
    return tuple(layers)


def hidden_features(model: nn.Module | HiddenLayers, x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Eval-mode activations of the last hidden layer, read straight from the Linear weights."""
    layers = model if isinstance(model, tuple) else hidden_layers(model)
    a, rows = padded_row_block(x)
    return last_hidden(layers, a)[:rows]


def padded_row_block(x: torch.Tensor | np.ndarray) -> tuple[np.ndarray, int]:
    """`x` as contiguous float32 rows, padded with zero rows to `padded_rows` (see
    `rowwise_product`)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().numpy()
    a = np.ascontiguousarray(x, dtype=np.float32)
    rows = a.shape[0]
    target = padded_rows(rows)
    if rows < target:
        a = np.concatenate([a, np.zeros((target - rows, a.shape[1]), dtype=a.dtype)])
    return a, rows


def last_hidden(layers: HiddenLayers, a: np.ndarray) -> np.ndarray:
    """float64 last-hidden activations of `a`; each row's bits depend on that row only."""
    h = torch.from_numpy(a)
    # NOTE: inverted dropout is the identity in eval mode, so Linear -> ReLU is the whole pass.
    # `addmm` with a contiguous transposed weight, as the engine runs it, gives each row the
    # same bits in any batch padded by `padded_row_block`; `F.linear` (a transposed view) did not.
    # Nothing here requires grad (detached weights, an input made from NumPy): no grad mode.
    for weight_t, bias in layers:
        h = torch.addmm(bias, h, weight_t).relu_()
    return h.numpy().astype(np.float64)


def rowwise_product(a: np.ndarray, b: torch.Tensor) -> np.ndarray:
    """`a @ b` in float64 where row i of the result depends only on row i of `a`.

    `a` is padded by `padded_row_block`: MKL's gemm gives a row the same bits for any such row count
    (`tests/inference` checks it), while other counts can take kernels that sum in another order.
    """
    out: np.ndarray = (torch.from_numpy(np.ascontiguousarray(a)) @ b).numpy()
    return out
