"""MC-dropout engine: agreement with the reference loop, exact semantics and batch invariance."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from app.inference import BayesianMLP, MCDropoutEngine
from app.inference.engine import _rows_per_chunk

FIELDS = ("mean", "std", "std_standard_error", "mutual_information", "band_low", "band_high")
NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=NO_CUDA)]


def make_model(in_features: int, hidden: list[int], p: float, seed: int) -> BayesianMLP:
    """A small random model whose logits are spread enough to give non-trivial uncertainty."""
    torch.manual_seed(seed)
    model = BayesianMLP(in_features, hidden, p)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                module.weight.mul_(2.0)
    return model.eval()


def reference_samples(model: BayesianMLP, x: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """The popular recipe: train mode and N separate forward passes; returns `[N, B]`."""
    torch.manual_seed(seed)
    model.train()
    with torch.no_grad():
        samples = torch.stack([torch.sigmoid(model(x)) for _ in range(n)]).double()
    model.eval()
    return samples


def delta_se_of_std(samples: torch.Tensor) -> torch.Tensor:
    """Monte Carlo SE of the sample std over dim 0 (the same delta method as the engine)."""
    n = samples.shape[0]
    s = samples.std(dim=0)
    m4 = (samples - samples.mean(dim=0)).pow(4).mean(dim=0)
    return ((m4 - s**4 * (n - 3) / (n - 1)).clamp_min(0) / n).sqrt() / (2 * s)


def assert_same(a: object, b: object, rows: slice | int | None = None) -> None:
    """Bit-for-bit equality of every statistic (optionally of some rows of `b`)."""
    for name in FIELDS:
        left, right = getattr(a, name), getattr(b, name)
        if rows is not None:
            right = right[rows].reshape(-1)
        assert torch.equal(left, right), name


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("hidden", [[24], [20, 16]], ids=["one-dropout", "two-dropout"])
def test_agrees_in_distribution_with_the_reference_loop(hidden: list[int], device: str) -> None:
    n = 20_000
    model = make_model(6, hidden, 0.3, seed=1)
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(2))
    engine = MCDropoutEngine(model, device=device, default_seed=3)
    got = engine.predict(x, n_samples=n)
    ref = reference_samples(model, x, n, seed=4)
    ref_mean, ref_std, ref_se = ref.mean(dim=0), ref.std(dim=0), delta_se_of_std(ref)
    # NOTE: the engine and the loop are two independent N-sample estimates of the same mean and
    # std, so their difference has SE sqrt(SE_engine^2 + SE_loop^2): SE(mean) = s / sqrt(N) and
    # SE(std) from the delta method. A 6-sigma bound gives a false alarm with probability ~2e-9
    # per comparison (both generators are seeded, so the test is also reproducible), yet at
    # N = 20,000 it is ~0.1-0.3 percentage points on the mean and ~2-3% of the std: a wrong keep
    # probability or a missing 1/(1-p) rescale shifts these by far more (checked below).
    mean_tol = 6 * torch.sqrt((got.std.double() ** 2 + ref_std**2) / n)
    std_tol = 6 * torch.sqrt(got.std_standard_error.double() ** 2 + ref_se**2)
    assert ((got.mean.double() - ref_mean).abs() <= mean_tol).all()
    assert ((got.std.double() - ref_std).abs() <= std_tol).all()
    assert (got.std > 0.01).all()
    assert (std_tol < 0.1 * ref_std).all()  # the bound is tight enough to mean something
    # The engine's SE agrees with the SE the same formula gives on the loop's samples.
    torch.testing.assert_close(got.std_standard_error.double(), ref_se, rtol=0.15, atol=0.0)
    # NOTE: MI = H(mean) - mean(H_n). Its SE is at most SE(mean(H_n)) + |H'(mean)| SE(mean)
    # (triangle inequality, first order), both estimated from the loop's samples.
    p_bar = ref_mean
    entropy = -(torch.xlogy(ref, ref) + torch.xlogy(1 - ref, 1 - ref))
    ref_mi = -(torch.xlogy(p_bar, p_bar) + torch.xlogy(1 - p_bar, 1 - p_bar)) - entropy.mean(0)
    slope = torch.log((1 - p_bar) / p_bar).abs()
    mi_se = (entropy.std(dim=0) + slope * ref_std) / math.sqrt(n)
    assert ((got.mutual_information.double() - ref_mi).abs() <= 6 * math.sqrt(2) * mi_se).all()
    # NOTE: the band's ends are the engine's 5th and 95th percentiles, so the share of the
    # loop's passes below each is 0.05 or 0.95 up to two binomial errors (the engine's rank and
    # the loop's sample): sqrt(2 q (1 - q) / N), ~0.002 here; a 10th percentile misses by 0.05.
    for end, q in ((got.band_low, 0.05), (got.band_high, 0.95)):
        below = (ref < end.double()).double().mean(dim=0)
        assert ((below - q).abs() <= 6 * math.sqrt(2 * q * (1 - q) / n)).all()


def test_with_two_passes_the_band_is_the_two_passes() -> None:
    # N = 2: the 5th and 95th percentiles are the lower and the upper pass, whose midpoint is
    # the mean and whose distance is sqrt(2) times the sample std.
    got = MCDropoutEngine(make_model(6, [24], 0.3, seed=1), "cpu").predict(
        torch.randn(8, 6, generator=torch.Generator().manual_seed(2)), n_samples=2
    )
    torch.testing.assert_close(got.band_low + got.band_high, 2 * got.mean)
    torch.testing.assert_close(got.band_high - got.band_low, math.sqrt(2) * got.std)
    assert (got.band_high > got.band_low).any()


def test_the_agreement_bound_catches_a_missing_rescale() -> None:
    # Keep probability right, 1/(1-p) rescale missing: the mean moves by many tolerances.
    n = 20_000
    model = make_model(6, [24], 0.3, seed=1)
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(2))
    wrong = make_model(6, [24], 0.3, seed=1)
    with torch.no_grad():
        wrong.net[-1].weight.mul_(0.7)  # the same as dropping the rescale
    got = MCDropoutEngine(wrong, device="cpu").predict(x, n_samples=n)
    ref = reference_samples(model, x, 2_000, seed=4)
    tol = 6 * torch.sqrt((got.std.double() ** 2 + ref.std(dim=0) ** 2) / n)
    assert ((got.mean.double() - ref.mean(dim=0)).abs() > tol).any()


def test_same_input_gives_the_same_bits_on_every_call() -> None:
    engine = MCDropoutEngine(make_model(10, [16], 0.2, seed=0), device="cpu")
    x = torch.randn(5, 10)
    first = engine.predict(x, n_samples=300)
    assert_same(first, engine.predict(x, n_samples=300))
    assert_same(
        first, MCDropoutEngine(make_model(10, [16], 0.2, seed=0), "cpu").predict(x, n_samples=300)
    )


SHAPES = {
    "shipped": (362, [256], 0.1),
    "two-dropout": (30, [32, 24], 0.2),
    "three-dropout": (12, [16, 16, 8], 0.3),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("n", [2, 50, 1000])
@pytest.mark.parametrize("shape", list(SHAPES), ids=list(SHAPES))
def test_an_encounter_gets_the_same_bits_in_any_batch(shape: str, n: int, device: str) -> None:
    in_features, hidden, p = SHAPES[shape]
    engine = MCDropoutEngine(make_model(in_features, hidden, p, seed=5), device=device)
    gen = torch.Generator().manual_seed(6)
    target = torch.randn(1, in_features, generator=gen)
    alone = engine.predict(target, n_samples=n)
    assert (alone.std > 0).all()
    # NOTE: 524 and 2048 rows are chunk sizes at N = 1000 and N = 50; the positions straddle
    # chunk boundaries, the last partial chunk and the one-row padding case.
    cases = [(2, [0, 1]), (3, [2]), (64, [0, 37, 63]), (600, [523, 524, 599])]
    if shape == "shipped" or n <= 50:  # NOTE: keeps the module fast; 4096 x 1000 deep is slow
        cases.append((4096, [0, 2047, 2048, 3000, 4095]))
    for size, positions in cases:
        batch = torch.randn(size, in_features, generator=gen)
        for position in positions:
            batch_with = batch.clone()
            batch_with[position] = target[0]
            result = engine.predict(batch_with, n_samples=n)
            assert_same(alone, result, rows=position)
    # The tail encounter of a batch whose last chunk holds a single row.
    rows = _rows_per_chunk(n)
    batch = torch.randn(rows + 1, in_features, generator=gen)
    batch[-1] = target[0]
    assert_same(alone, engine.predict(batch, n_samples=n), rows=rows)


def test_results_do_not_depend_on_the_thread_count() -> None:
    engine = MCDropoutEngine(make_model(362, [256], 0.1, seed=7), device="cpu")
    x = torch.randn(700, 362)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = engine.predict(x, n_samples=256)
        torch.set_num_threads(max(2, before))
        assert_same(single, engine.predict(x, n_samples=256))
    finally:
        torch.set_num_threads(before)


def test_batch_invariance_self_check_passes_here() -> None:
    assert MCDropoutEngine(make_model(20, [16, 8], 0.2, seed=0), "cpu").check_batch_invariance()


def test_no_dropout_gives_zero_std_and_the_eval_output() -> None:
    model = make_model(8, [16, 12], 0.0, seed=8)
    x = torch.randn(6, 8)
    got = MCDropoutEngine(model, device="cpu").predict(x, n_samples=100)
    with torch.no_grad():
        expected = torch.sigmoid(model(x))
    torch.testing.assert_close(got.mean, expected, rtol=0, atol=1e-6)
    for name in ("std", "std_standard_error", "mutual_information"):
        assert torch.equal(getattr(got, name), torch.zeros(6)), name
    assert torch.equal(got.band_low, got.mean) and torch.equal(got.band_high, got.mean)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_the_model_is_never_touched(mode: str) -> None:
    model = make_model(8, [16, 12], 0.3, seed=9)
    model.train(mode == "train")
    before = {name: t.clone() for name, t in model.state_dict().items()}
    pointers = {name: t.data_ptr() for name, t in model.state_dict().items()}
    engine = MCDropoutEngine(model, device="cpu")
    result = engine.predict(torch.randn(3, 8), n_samples=64)
    assert model.training is (mode == "train")
    assert all(m.training is (mode == "train") for m in model.modules())
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]) and tensor.data_ptr() == pointers[name]
    assert all(parameter.grad is None for parameter in model.parameters())
    # The engine owns its weights: changing the module later does not change the engine.
    x = torch.randn(3, 8)
    first = engine.predict(x, n_samples=64)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    assert_same(first, engine.predict(x, n_samples=64))
    assert not result.mean.requires_grad


def test_default_seed_and_explicit_seed() -> None:
    model = make_model(8, [16], 0.3, seed=10)
    x = torch.randn(4, 8)
    engine = MCDropoutEngine(model, device="cpu", default_seed=7)
    default = engine.predict(x, n_samples=200)
    assert default.seed == 7 and default.n_samples == 200
    assert_same(default, engine.predict(x, n_samples=200, seed=7))
    other = engine.predict(x, n_samples=200, seed=8)
    assert other.seed == 8
    assert not torch.equal(other.std, default.std)
    assert MCDropoutEngine(model, device="cpu").predict(x, n_samples=10).seed == 0
    for seed in range(20):  # many seeds: the mask cache stays bounded and results stay exact
        engine.predict(x, n_samples=200, seed=seed)
    assert_same(default, engine.predict(x, n_samples=200))


def test_std_standard_error_matches_the_spread_across_seeds() -> None:
    # NOTE: 200 replicates give the spread of the std to ~5% (1 SE); 25% is a 5-sigma margin.
    engine = MCDropoutEngine(make_model(6, [24], 0.3, seed=11), device="cpu")
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(12))
    results = [engine.predict(x, n_samples=500, seed=s) for s in range(200)]
    spread = torch.stack([r.std for r in results]).std(dim=0)
    reported = torch.stack([r.std_standard_error for r in results]).mean(dim=0)
    torch.testing.assert_close(reported, spread, rtol=0.25, atol=0.0)


def test_outputs_are_float32_cpu_rows_and_inputs_are_checked() -> None:
    engine = MCDropoutEngine(make_model(8, [16], 0.3, seed=13), device="auto")
    result = engine.predict(torch.randn(5, 8, dtype=torch.float64), n_samples=20)
    for name in FIELDS:
        tensor = getattr(result, name)
        assert (
            tensor.shape == (5,) and tensor.dtype == torch.float32 and tensor.device.type == "cpu"
        )
    assert engine.predict(torch.empty(0, 8), n_samples=20).mean.shape == (0,)
    with pytest.raises(ValueError):
        engine.predict(torch.randn(5, 7), n_samples=20)
    with pytest.raises(ValueError):
        engine.predict(torch.randn(5, 8), n_samples=1)
    with pytest.raises(ValueError):
        engine.predict(torch.randn(5, 8), n_samples=20, seed=-1)
    with pytest.raises(ValueError):
        MCDropoutEngine(nn.Sequential(nn.Linear(8, 4), nn.Tanh(), nn.Linear(4, 1)), device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where CUDA is absent")
def test_cuda_without_a_gpu_is_refused() -> None:
    with pytest.raises(ValueError):
        MCDropoutEngine(make_model(8, [16], 0.3, seed=0), device="cuda")


@NO_CUDA
def test_cuda_matches_the_cpu_in_distribution_and_is_batch_invariant() -> None:
    model = make_model(362, [256], 0.1, seed=14)
    x = torch.randn(64, 362)
    cuda = MCDropoutEngine(model, device="cuda").predict(x, n_samples=1000)
    cpu = MCDropoutEngine(model, device="cpu").predict(x, n_samples=1000)
    # The same seed draws the same subnetworks on both devices; only rounding differs.
    torch.testing.assert_close(cuda.mean, cpu.mean, rtol=0, atol=1e-5)
    torch.testing.assert_close(cuda.std, cpu.std, rtol=1e-3, atol=1e-6)
    alone = MCDropoutEngine(model, device="cuda").predict(x[37:38], n_samples=1000)
    assert_same(alone, cuda, rows=37)


def test_share_above_counts_the_passes_at_or_above_the_cut() -> None:
    model = make_model(12, [16], 0.3, seed=4)
    engine = MCDropoutEngine(model, device="cpu", default_seed=3)
    x = torch.randn(21, 12, generator=torch.Generator().manual_seed(2))
    logits = engine.pass_logits(x, n_samples=50)
    cut = float(np.median(logits))
    result = engine.predict(x, n_samples=50, cut=cut)
    assert result.share_above is not None
    expected = (logits >= np.float32(cut)).sum(axis=1) / 50  # exact: a count out of N
    assert result.share_above.dtype == torch.float64
    assert torch.equal(result.share_above, torch.from_numpy(expected))
    assert 0 < float(result.share_above.mean()) < 1
    # The pass logits are the passes the summaries come from.
    probs = 1 / (1 + np.exp(-logits.astype(np.float64)))
    assert np.allclose(probs.mean(axis=1), result.mean.numpy(), atol=1e-6)
    assert not engine.predict(x, n_samples=50).share_above.any()  # no cut: nothing counted
