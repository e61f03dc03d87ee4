"""Benchmark the MC-dropout engine against the reference loop and against plain matmul.

Run `python bench/mc_engine.py` (about 3 minutes) or `python bench/mc_engine.py --quick`;
`--device cuda` measures the CUDA path (the loop and the matmul run on the GPU too; the engine is
given CPU inputs, so its one transfer in and out is counted). Everything is measured in one run
on 2 CPU threads; times are medians over interleaved rounds (loop with engine for the speed-up,
engine with matmul for the FLOP rate), so each pair shares whatever load the machine carries.
In a round each function runs back to back for about `BLOCK_S` and counts time per call: the
steady rate a busy server sees. `--cold` times single calls instead, each right after the other
function's, which charges every call the cache and branch-predictor misses of a cold start.
"""

import argparse
import itertools
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# NOTE: `--passive` makes idle OpenMP threads sleep instead of spin (useful on a busy shared
# host), at the price of a wake-up latency on every small operator on both sides, which distorts
# small-B numbers. The library default (ACTIVE on a quiet machine) is used otherwise. It must be
# set before torch loads OpenMP, hence the check of argv here.
if "--passive" in sys.argv[1:]:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.inference import BayesianMLP, MCDropoutEngine
from app.inference.repository import ModelLoadError, latest_version_dir, load_model

THREADS = 2
BLOCK_S = 0.02  # one function's share of a round


def synchronised(fn: Callable[[], object], device: torch.device) -> Callable[[], object]:
    """`fn` followed by a wait for the GPU, so a timer sees the whole of its work."""
    if device.type != "cuda":
        return fn

    def run_and_wait() -> None:
        fn()
        torch.cuda.synchronize(device)

    return run_and_wait


def side_by_side(
    fns: list[Callable[[], object]], budget_s: float, max_rounds: int, *, cold: bool = False
) -> list[float]:
    """Median seconds per call of each function, over rounds that alternate between them."""
    calls = []
    for fn in fns:
        start = time.perf_counter()
        fn()
        once = time.perf_counter() - start
        calls.append(1 if cold else max(1, min(1000, int(BLOCK_S / max(once, 1e-7)))))
    times: list[list[float]] = [[] for _ in fns]
    spent = 0.0
    while len(times[0]) < max_rounds and (not times[0] or spent < budget_s):
        for fn, count, own in zip(fns, calls, times, strict=True):
            start = time.perf_counter()
            for _ in range(count):
                fn()
            elapsed = time.perf_counter() - start
            own.append(elapsed / count)
            spent += elapsed
    return [statistics.median(own) for own in times]


def reference_loop(model: BayesianMLP, x: torch.Tensor, n: int) -> None:
    """The popular recipe: train mode, N forward passes, mean and std."""
    model.train()
    with torch.no_grad():
        probs = torch.stack([torch.sigmoid(model(x)) for _ in range(n)])
        probs.mean(dim=0), probs.std(dim=0)
    model.eval()


def useful_flops(model: BayesianMLP, batch: int, n: int) -> float:
    """Multiply-adds x 2 the engine needs: prefix once, every later layer N times."""
    widths = [model.in_features, *model.hidden, 1]
    return (
        2.0
        * batch
        * (widths[0] * widths[1] + n * sum(a * b for a, b in itertools.pairwise(widths[1:])))
    )


def matmul_limit(
    model: BayesianMLP, batch: int, n: int, device: torch.device
) -> Callable[[], object]:
    """Plain torch.matmul of the same shapes (the practical limit)."""
    widths = [model.in_features, *model.hidden, 1]
    shapes = [((batch, widths[0]), (widths[0], widths[1]))]
    for k, (a, b) in enumerate(itertools.pairwise(widths[1:])):
        rows = batch if k == 0 and len(widths) == 3 else batch * n
        cols = n if k == 0 and len(widths) == 3 else b
        shapes.append(((rows, a), (a, cols)))
    operands = [(torch.randn(*s, device=device), torch.randn(*t, device=device)) for s, t in shapes]
    return synchronised(lambda: [torch.matmul(a, b) for a, b in operands], device)


def shipped_model() -> tuple[BayesianMLP, str]:
    try:
        loaded = load_model(latest_version_dir())
        return loaded.model, f"model {loaded.version}"
    except ModelLoadError:
        torch.manual_seed(0)
        return BayesianMLP(362, [256], 0.1), "random BayesianMLP(362, [256], p=0.1)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="N=50, B in {1, 256} only")
    parser.add_argument(
        "--passive", action="store_true", help="OMP_WAIT_POLICY=PASSIVE (idle threads sleep)"
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--cold", action="store_true", help="time single alternating calls")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(THREADS)
    ns = (50,) if args.quick else (50, 256, 1000)
    batches = (1, 256) if args.quick else (1, 32, 256, 4096)
    budget = 0.25 if args.quick else 0.4
    model, name = shipped_model()
    engine = MCDropoutEngine(model, device=device)
    model.to(device)
    policy = os.environ.get("OMP_WAIT_POLICY", "library default")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"# {name}; torch {torch.__version__}; {where}; {THREADS} threads; "
        f"OMP_WAIT_POLICY={policy}; {'single cold calls' if args.cold else 'steady rate'}; "
        f"load {os.getloadavg()[0]:.2f}"
    )
    head = (
        f"{'N':>5} {'B':>5} | {'loop enc/s':>11} {'engine enc/s':>13} {'speed-up':>9} | "
        f"{'engine GFLOP/s':>14} {'matmul GFLOP/s':>14} {'of limit':>8}"
    )
    print(head)
    print("-" * len(head))
    started = time.perf_counter()
    for n in ns:
        for batch in batches:
            x = torch.randn(batch, model.in_features)
            x_there = x.to(device)
            work = batch * n
            loop_reps = 1 if work >= 256 * 256 and device.type == "cpu" else 5
            t_loop, t_engine = side_by_side(
                [
                    synchronised(lambda: reference_loop(model, x_there, n), device),  # noqa: B023
                    lambda: engine.predict(x, n_samples=n),  # noqa: B023
                ],
                budget,
                loop_reps,
                cold=args.cold,
            )
            t_engine, t_mm = side_by_side(
                [
                    lambda: engine.predict(x, n_samples=n),  # noqa: B023
                    matmul_limit(model, batch, n, device),
                ],
                budget,
                200,
                cold=args.cold,
            )
            flops = useful_flops(model, batch, n)
            print(
                f"{n:>5} {batch:>5} | {batch / t_loop:>11,.1f} {batch / t_engine:>13,.1f} "
                f"{t_loop / t_engine:>8.0f}x | {flops / t_engine / 1e9:>14.1f} "
                f"{flops / t_mm / 1e9:>14.1f} {t_mm / t_engine:>8.0%}",
                flush=True,
            )
    if not args.quick:
        torch.manual_seed(0)
        deep = BayesianMLP(model.in_features, [256, 256], 0.1)
        deep_engine = MCDropoutEngine(deep, device=device)
        print(f"\n# two dropout layers: BayesianMLP({model.in_features}, [256, 256], p=0.1)")
        for n, batch in ((50, 256), (50, 4096)):
            x = torch.randn(batch, deep.in_features)
            t_engine, t_mm = side_by_side(
                [
                    lambda: deep_engine.predict(x, n_samples=n),  # noqa: B023
                    matmul_limit(deep, batch, n, device),
                ],
                budget,
                20,
                cold=args.cold,
            )
            flops = useful_flops(deep, batch, n)
            print(
                f"N={n} B={batch}: engine {flops / t_engine / 1e9:.1f} GFLOP/s, "
                f"matmul {flops / t_mm / 1e9:.1f} GFLOP/s, {t_mm / t_engine:.0%} of the limit"
            )
    print(f"\n# {time.perf_counter() - started:.0f} s; load {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
