"""Train the BayesianMLP deterministically: AdamW, early stopping on validation AUROC."""

import copy
import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from app.inference.model import BayesianMLP
from app.training.metrics import auroc


@dataclass(frozen=True)
class Recipe:
    """Hyper-parameters of one training run."""

    hidden: tuple[int, ...] = (256,)
    p: float = 0.3
    lr: float = 3e-4
    weight_decay: float = 0.1
    batch_size: int = 512
    max_epochs: int = 60
    patience: int = 6
    threads: int = 1


@dataclass
class History:
    """Per-epoch training loss and validation AUROC, and the epoch kept."""

    loss: list[float] = field(default_factory=list)
    val_auroc: list[float] = field(default_factory=list)
    best_epoch: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Serialise to plain JSON types."""
        return asdict(self)


@contextmanager
def reproducible(seed: int, threads: int) -> Iterator[None]:
    """Seed every generator and pin threads for a block, restoring the process's settings after."""
    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    # NOTE: a fixed thread count fixes the summation order, so the same seed gives the same bits.
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_deterministic)


def predict_deterministic(model: BayesianMLP, x: torch.Tensor, batch: int = 65536) -> np.ndarray:
    """Probabilities with dropout off (the plain network, no MC)."""
    model.eval()
    with torch.inference_mode():
        parts = [torch.sigmoid(model(x[i : i + batch])) for i in range(0, len(x), batch)]
    return torch.cat(parts).double().numpy() if parts else np.empty(0)


def train_model(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    recipe: Recipe,
    seed: int,
    progress: bool = True,
) -> tuple[BayesianMLP, History]:
    """Fit a BayesianMLP and return the epoch with the best validation AUROC."""
    with reproducible(seed, recipe.threads):
        return _train(x_train, y_train, x_val, y_val, recipe=recipe, seed=seed, progress=progress)


def _train(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    recipe: Recipe,
    seed: int,
    progress: bool,
) -> tuple[BayesianMLP, History]:
    xt = torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y_train, dtype=np.float32))
    xv = torch.from_numpy(np.ascontiguousarray(x_val, dtype=np.float32))
    model = BayesianMLP(xt.shape[1], list(recipe.hidden), recipe.p)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay
    )
    loss_fn = nn.BCEWithLogitsLoss()
    shuffler = torch.Generator().manual_seed(seed)
    history = History()
    best_state = copy.deepcopy(model.state_dict())
    best = -np.inf
    bar = tqdm(range(recipe.max_epochs), desc="train", file=sys.stderr, disable=not progress)
    for epoch in bar:
        model.train()
        order = torch.randperm(len(xt), generator=shuffler)
        total = 0.0
        for start in range(0, len(xt), recipe.batch_size):
            idx = order[start : start + recipe.batch_size]
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
        score = auroc(y_val, predict_deterministic(model, xv))
        history.loss.append(total / max(len(xt), 1))
        history.val_auroc.append(score)
        bar.set_postfix(loss=f"{history.loss[-1]:.4f}", val_auroc=f"{score:.4f}")
        # NOTE: a single-class validation set (tiny runs) has no AUROC; keep the latest epoch.
        if np.isnan(score) or score > best:
            best, history.best_epoch = score, epoch
            best_state = copy.deepcopy(model.state_dict())
        elif epoch - history.best_epoch >= recipe.patience:
            break
    bar.close()
    model.load_state_dict(best_state)
    model.eval()
    return model, history
