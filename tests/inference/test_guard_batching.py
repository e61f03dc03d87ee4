"""The guard's novelty score: the same bits for an encounter alone or anywhere in a batch."""

import numpy as np
import pytest
import torch

from app.inference import BayesianMLP, MCDropoutEngine
from app.inference.activations import hidden_features
from app.inference.guard import DomainGuard


@pytest.fixture(scope="module")
def guard_and_x() -> tuple[DomainGuard, np.ndarray]:
    torch.manual_seed(0)
    model = BayesianMLP(40, [64, 32], 0.2)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((32, 32))
    guard = DomainGuard(
        ranges={},
        observed={},
        mean=rng.standard_normal(32),
        precision=a @ a.T / 32 + np.eye(32),
        threshold=1.0,
        quantile=0.98,
        model=model,
    )
    return guard, rng.standard_normal((300, 40)).astype(np.float32)


@pytest.mark.parametrize("threads", [1, 2])
def test_novelty_is_batch_invariant(guard_and_x: tuple[DomainGuard, np.ndarray], threads) -> None:
    guard, x = guard_and_x
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        whole = guard.novelty(x)
        for rows in (1, 2, 3, 14, 33, 257):
            for start in (0, 1, 40):
                part = guard.novelty(x[start : start + rows])
                assert np.array_equal(part, whole[start : start + rows]), (rows, start)
    finally:
        torch.set_num_threads(before)


def test_novelty_matches_the_mahalanobis_definition(
    guard_and_x: tuple[DomainGuard, np.ndarray],
) -> None:
    guard, x = guard_and_x
    d = hidden_features(guard.model, x) - guard.mean  # type: ignore[arg-type]
    reference = np.sqrt(np.einsum("ij,jk,ik->i", d, guard.precision, d))
    np.testing.assert_allclose(guard.novelty(x), reference, rtol=1e-12)


def _guard_for(model: BayesianMLP, width: int) -> DomainGuard:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((width, width))
    return DomainGuard(
        ranges={},
        observed={},
        mean=rng.standard_normal(width),
        precision=a @ a.T / width + np.eye(width),
        threshold=1.0,
        quantile=0.98,
        model=model,
    )


@pytest.mark.parametrize(("hidden", "p"), [([64], 0.2), ([64, 32], 0.0)])
def test_the_engines_activations_give_the_guard_the_same_bits(hidden, p) -> None:
    torch.manual_seed(0)
    model = BayesianMLP(40, hidden, p)
    guard = _guard_for(model, hidden[-1])
    engine = MCDropoutEngine(model, device="cpu")
    x = np.random.default_rng(2).standard_normal((700, 40)).astype(np.float32)
    # NOTE: 700 rows at N = 1,000 run as two chunks of rows inside the engine.
    for rows, n in ((1, 64), (2, 64), (37, 64), (700, 1000)):
        part = x[:rows]
        kept = engine.predict(torch.from_numpy(part), n_samples=n).hidden
        assert kept is not None and kept.dtype == np.float32
        assert np.array_equal(kept.astype(np.float64), hidden_features(model, part))
        assert np.array_equal(guard.novelty(part, kept), guard.novelty(part)), rows


def test_the_engine_keeps_no_activations_when_dropout_precedes_the_last_hidden_layer() -> None:
    model = BayesianMLP(40, [64, 32], 0.2)
    x = torch.randn(3, 40)
    assert MCDropoutEngine(model, device="cpu").predict(x, n_samples=16).hidden is None
