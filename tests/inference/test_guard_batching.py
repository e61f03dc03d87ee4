"""The guard's novelty score: the same bits for an encounter alone or anywhere in a batch."""

import numpy as np
import pytest
import torch

from app.inference import BayesianMLP
from app.inference.guard import DomainGuard, hidden_features


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
