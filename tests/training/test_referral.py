"""The referral report: ranking, bootstrap intervals, shifts and a small end-to-end run."""

import json
from pathlib import Path

import numpy as np
import pytest

from app.features import FeatureSpec
from app.inference import MCDropoutEngine
from app.training import shift
from app.training.calibration import fit_platt
from app.training.data import load_dataset, split_assignment
from app.training.policy import fit_policy
from app.training.referral import (
    bootstrap_mean_ci,
    flag_agreement,
    group_metrics,
    mc_scores,
    referred_mask,
)
from app.training.referral_report import build_report
from app.training.train import Recipe, train_model


def test_referred_mask_takes_the_top_share() -> None:
    score = np.array([0.1, 0.9, 0.5, 0.7, 0.3, 0.2, 0.8, 0.0, 0.4, 0.6])
    assert np.flatnonzero(referred_mask(score, 0.3)).tolist() == [1, 3, 6]
    assert not referred_mask(score, 0.0).any()


def test_flag_agreement_counts_jaccard_and_same_decisions() -> None:
    a = np.array([1, 1, 0, 0, 1], dtype=bool)
    b = np.array([1, 0, 0, 0, 1], dtype=bool)
    agreement = flag_agreement(a, b)
    assert agreement["jaccard"] == pytest.approx(2 / 3)
    assert agreement["same_decision"] == pytest.approx(4 / 5)


def test_bootstrap_interval_covers_the_mean() -> None:
    values = np.random.default_rng(0).normal(1.0, 1.0, 2000)
    lo, hi = bootstrap_mean_ci(values, seed=1)
    assert lo < values.mean() < hi
    assert hi - lo == pytest.approx(2 * 1.96 / np.sqrt(2000), rel=0.2)


def test_group_metrics_of_an_empty_group() -> None:
    assert group_metrics(np.array([]), np.array([]), seed=0) == {"n": 0}


@pytest.fixture(scope="module")
def small(data_file: Path) -> dict:
    """A tiny model on a few thousand real rows, with its guard, policy and card."""
    dataset = load_dataset(data_file, max_rows=3000)
    split = split_assignment(dataset.frame, 7)
    train, val = split == 0, split == 1
    spec = FeatureSpec.fit(dataset.columns(train))
    x_train, x_val = spec.encode(dataset.columns(train)), spec.encode(dataset.columns(val))
    recipe = Recipe(hidden=(16,), max_epochs=3, patience=1, threads=1)
    model, _ = train_model(
        x_train, dataset.labels[train], x_val, dataset.labels[val], recipe=recipe, seed=3,
        progress=False,
    )  # fmt: skip
    guard, uncertainty = fit_policy(
        model, dataset.columns(train), x_train, dataset.columns(val), x_val,
        review_rate=0.2, n_samples=32, seed=5,
    )  # fmt: skip
    engine = MCDropoutEngine(model, device="cpu", default_seed=5)
    mean, _, _ = mc_scores(engine, x_val, n_samples=32, seed=5)
    card = {
        "uncertainty": uncertainty,
        "domain_guard": guard.to_dict(),
        "calibration": fit_platt(mean, dataset.labels[val]),
        "mc": {"n_samples": 32, "seed": 5},
    }
    return {"dataset": dataset, "split": split, "model": model, "spec": spec, "card": card,
            "recipe": recipe}  # fmt: skip


def test_policy_flags_the_review_rate_on_validation(small: dict) -> None:
    uncertainty = small["card"]["uncertainty"]
    assert uncertainty["validation_flag_rate"] == pytest.approx(0.2, abs=0.01)
    rates = uncertainty["validation_rates"]
    assert rates["out_of_distribution:novelty"] == pytest.approx(0.04, abs=0.01)


def test_shifts_change_what_they_say(small: dict) -> None:
    dataset, spec = small["dataset"], small["spec"]
    columns = dataset.columns(small["split"] == 2)
    x = spec.encode(columns)
    tripled, _ = shift.apply_shift("counts_x3", columns, x, spec, 0)
    assert tripled["num_medications"][0] == 3 * int(columns["num_medications"][0])
    drawn, _ = shift.apply_shift("random_categories", columns, x, spec, 0)
    assert set(drawn["race"]) <= {v for v in columns["race"] if v is not None}
    same, noisy = shift.apply_shift("gaussian_noise_sigma_1", columns, x, spec, 0)
    assert same is columns and noisy.shape == x.shape and not np.allclose(noisy, x)


def test_report_end_to_end(small: dict, tmp_path: Path) -> None:
    report = build_report(
        dataset=small["dataset"], split=small["split"], model=small["model"], spec=small["spec"],
        card=small["card"], out_dir=tmp_path, recipe=small["recipe"], seed=0,
    )  # fmt: skip
    assert {p.name for p in tmp_path.iterdir()} == {
        "referral.json", "referral.md", "referral_curve.png", "decision_curve.png",
    }  # fmt: skip
    assert json.loads((tmp_path / "referral.json").read_text()) == report
    methods = {row["method"] for row in report["referral"]}
    assert methods == {"std", "mutual_information", "domain", "combined", "random"}
    assert {row["fraction"] for row in report["referral"]} == {0.05, 0.10, 0.20, 0.30}
    assert set(report["shifts"]) == set(shift.SHIFTS)
    assert report["shifts"]["counts_at_10_sd"]["auroc_combined"] > 0.9
    assert 0 <= report["seed_agreement"]["combined_flag"]["jaccard"] <= 1
    assert report["held_out_under_30"]["auroc_combined"] > 0.9  # the age check alone sees them
    assert "## Shift tests" in (tmp_path / "referral.md").read_text()
    decision = report["decision"]
    assert 0 < decision["action_threshold"] < 1  # chosen on validation: the card has none
    rows = {(r["method"], r["kind"], r["fraction"]) for r in decision["rows"]}
    for method in ("std", "logit_std", "mutual_information", "decision_flip"):
        assert {(method, kind, 0.10) for kind in ("ranking", "policy")} <= rows
    assert {("closeness", "ranking", 0.2), ("random", "ranking", 0.05)} <= rows
    for row in decision["rows"]:
        lo, hi = row["net_benefit_minus_matched_random_ci"]
        assert lo <= row["net_benefit_minus_matched_random"] <= hi
    assert "## Flags that change a decision" in (tmp_path / "referral.md").read_text()


def test_report_referral_command_fits_the_guard_into_a_card(
    data_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli import main
    from app.inference.repository import load_model, read_card, write_card
    from app.training.data import read_frame

    data = tmp_path / "rows.csv"
    read_frame(data_file, max_rows=3000).to_csv(data, index=False, na_rep="?")
    model = tmp_path / "tiny"
    argv = ["train", "--data", str(data), "--epochs", "2", "--n-samples", "32", "--no-report"]
    assert main([*argv, "--out", str(model), "--no-progress"]) == 0
    trained = read_card(model)
    assert "domain_guard" in trained  # training fits it
    assert trained["uncertainty"]["validation_flag_rate"] == pytest.approx(0.10, abs=0.01)
    write_card(model, {k: v for k, v in trained.items() if k != "domain_guard"})
    capsys.readouterr()

    argv = ["report-referral", "--data", str(data), "--model", str(model), "--no-retrain"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    refitted = read_card(model)
    assert refitted["domain_guard"] == trained["domain_guard"]  # same data, same fit
    assert refitted["weights_sha256"] == trained["weights_sha256"]
    load_model(model)  # the weights still match the card
    assert summary["flag_rates"]["validation"]["flagged"] == pytest.approx(0.10, abs=0.01)
    assert (model / "referral.md").is_file() and (model / "referral_curve.png").is_file()

    argv = [*argv, "--action-threshold", "0.15"]
    assert main(argv) == 0
    decided = read_card(model)
    assert decided["weights_sha256"] == trained["weights_sha256"]
    decision = decided["decision"]
    assert decision["action_threshold"] == 0.15 and decision["measure"] == "decision_flip"
    # Near the budget as the ties of a k / 32 share allow (the card's N is 32 here).
    assert 0.05 < decision["validation_flag_rate"] <= 0.11
    assert load_model(model).card["decision"] == decision
    report = json.loads((model / "referral.json").read_text())
    shipped = report["decision"]["shipped_flag_rates"]["test"]["flagged"]
    assert decided["metrics"]["flag_rate"] == shipped
