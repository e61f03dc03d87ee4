"""The MC-dropout engine: N dropout subnetworks per encounter, exact, seeded and batch-invariant.

Semantics
- Inverted dropout exactly as trained: a unit is kept with probability 1-p and survivors are
  scaled by 1/(1-p). Only dropout is stochastic; Linear and ReLU run as in eval mode. The engine
  reads the weights once at construction into tensors it owns and never touches the module again
  (no `train()`/`eval()`), so concurrent use is safe.
- A call draws N subnetworks, one keep-mask per dropout layer per sample, from a
  `torch.Generator` seeded with `seed` (the constructor's `default_seed` when None). Masks are
  drawn on the CPU, so the same seed gives the same subnetworks on every device.
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from app.inference.model import BayesianMLP

DEFAULT_N_SAMPLES = 256
_MASK_CACHE_SIZE = 8


@dataclass(frozen=True)
class MCDropoutResult:
    """Per-encounter MC-dropout summary; every tensor is `[B]` float32 on the CPU."""

    mean: torch.Tensor
    std: torch.Tensor
    std_standard_error: torch.Tensor
    mutual_information: torch.Tensor
    n_samples: int
    seed: int


@dataclass(frozen=True)
class _Layer:
    weight_t: torch.Tensor  # [in, out], contiguous
    bias: torch.Tensor  # [out]
    p: float  # dropout after this layer's ReLU; 0.0 when there is none


def _resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but CUDA is not available")
    return resolved


def _read_layers(
    model: nn.Module, device: torch.device
) -> tuple[list[_Layer], torch.Tensor, float]:
    """Copy the weights of `Linear -> ReLU [-> Dropout]` blocks and the output Linear."""
    modules = list(model.net) if isinstance(model, BayesianMLP) else list(model.children())
    linears: list[tuple[torch.Tensor, torch.Tensor]] = []
    dropout_after: list[float] = []
    for i, module in enumerate(modules):
        if isinstance(module, nn.Linear):
            weight = module.weight.detach().to(device=device, dtype=torch.float32, copy=True)
            bias = (
                module.bias.detach()
                if module.bias is not None
                else weight.new_zeros(weight.shape[0])
            )
            linears.append((weight, bias.to(device=device, dtype=torch.float32, copy=True)))
            dropout_after.append(0.0)
        elif isinstance(module, nn.ReLU):
            if not linears or not isinstance(modules[i - 1], nn.Linear):
                raise ValueError("ReLU must follow a Linear")
        elif isinstance(module, nn.Dropout):
            if not isinstance(modules[i - 1], nn.ReLU):
                raise ValueError("Dropout must follow a ReLU")
            dropout_after[-1] = float(module.p)
        else:
            raise ValueError(
                f"unsupported module in the MC-dropout engine: {type(module).__name__}"
            )
    if not linears or linears[-1][0].shape[0] != 1 or isinstance(modules[-1], nn.ReLU | nn.Dropout):
        raise ValueError("the network must end with a Linear that has one output")
    hidden = [
        _Layer(w.t().contiguous(), b, p)
        for (w, b), p in zip(linears[:-1], dropout_after[:-1], strict=True)
    ]
    out_w, out_b = linears[-1]
    return hidden, out_w[0].contiguous(), float(out_b[0])


class MCDropoutEngine:
    """Monte Carlo dropout over a `BayesianMLP`, without mutating it."""

    def __init__(
        self, model: nn.Module, device: str | torch.device = "auto", *, default_seed: int = 0
    ) -> None:
        self.device = _resolve_device(device)
        self.default_seed = int(default_seed)
        self._hidden, self._out_w, self._out_b = _read_layers(model, self.device)
        self.in_features = (
            self._hidden[0].weight_t.shape[0] if self._hidden else self._out_w.shape[0]
        )
        self._masks: OrderedDict[tuple[int, int], list[torch.Tensor]] = OrderedDict()
        self._lock = threading.Lock()

    def _draw_masks(self, seed: int, n_samples: int) -> list[torch.Tensor]:
        """Return scaled keep-masks `[N, width]` (0 or 1/(1-p)), one per hidden layer."""
        key = (seed, n_samples)
        with self._lock:
            if key in self._masks:
                self._masks.move_to_end(key)
                return self._masks[key]
        generator = torch.Generator().manual_seed(seed)
        masks = []
        for layer in self._hidden:
            width = layer.weight_t.shape[1]
            keep = torch.rand(n_samples, width, generator=generator) < (1.0 - layer.p)
            masks.append((keep.to(torch.float32) / (1.0 - layer.p)).to(self.device))
        with self._lock:
            self._masks[key] = masks
            while len(self._masks) > _MASK_CACHE_SIZE:
                self._masks.popitem(last=False)
        return masks

    @torch.inference_mode()
    def predict(
        self, x: torch.Tensor, *, n_samples: int = DEFAULT_N_SAMPLES, seed: int | None = None
    ) -> MCDropoutResult:
        """Summarise N dropout subnetworks' probabilities for each row of `x` `[B, in_features]`."""
        if n_samples < 2:
            raise ValueError(f"n_samples must be at least 2, got {n_samples}")
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"x must have shape [B, {self.in_features}], got {list(x.shape)}")
        used_seed = self.default_seed if seed is None else int(seed)
        masks = self._draw_masks(used_seed, n_samples)
        h = x.to(device=self.device, dtype=torch.float32)
        samples: torch.Tensor | None = None  # [N, B, width] once dropout has happened
        for layer, mask in zip(self._hidden, masks, strict=True):
            if samples is None:
                h = torch.relu(h @ layer.weight_t + layer.bias)
                samples = h.unsqueeze(0) * mask.unsqueeze(1)
            else:
                samples = torch.relu(samples @ layer.weight_t + layer.bias) * mask.unsqueeze(1)
        assert samples is not None
        logits = (samples @ self._out_w + self._out_b).t()  # [B, N]
        return _summarise(logits, n_samples, used_seed)


def _summarise(logits: torch.Tensor, n_samples: int, seed: int) -> MCDropoutResult:
    """Mean, std, the std's Monte Carlo SE and BALD from logits `[B, N]`, in float64."""
    z = logits.to(torch.float64)
    prob = torch.sigmoid(z)
    mean = prob.mean(dim=1)
    dev = prob - mean.unsqueeze(1)
    var = dev.square().sum(dim=1) / (n_samples - 1)
    m4 = dev.square().square().mean(dim=1)
    # NOTE: delta method: Var(s^2) ~ (m4 - s^4 (N-3)/(N-1)) / N and SE(s) ~ SE(s^2) / (2 s).
    var_s2 = (m4 - var.square() * (n_samples - 3) / (n_samples - 1)).clamp_min(0.0) / n_samples
    std = var.sqrt()
    se = torch.where(std > 0, var_s2.sqrt() / (2 * std), torch.zeros_like(std))
    # NOTE: the entropy of Bernoulli(sigmoid(z)) is softplus(z) - sigmoid(z) * z, stable for any z.
    mean_entropy = (torch.nn.functional.softplus(z) - prob * z).mean(dim=1)
    entropy_of_mean = -(torch.xlogy(mean, mean) + torch.xlogy(1 - mean, 1 - mean))
    mi = (entropy_of_mean - mean_entropy).clamp_min(0.0)
    return MCDropoutResult(
        mean=mean.float().cpu(),
        std=std.float().cpu(),
        std_standard_error=se.float().cpu(),
        mutual_information=mi.float().cpu(),
        n_samples=n_samples,
        seed=seed,
    )
