"""The domain guard: per-feature reasons, the novelty score, persistence and the policy."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from app.features import FeatureSpec
from app.inference import BayesianMLP
from app.inference.flags import flagged
from app.inference.guard import (
    GUARD_COLUMNS,
    NOVELTY_REASON,
    OOD_PREFIX,
    DomainGuard,
    GuardResult,
)
from app.training.policy import fit_guard, fit_std_threshold
from app.training.referral import referral_score
from tests.support import published_rows

N_TRAIN = 3000


@pytest.fixture(scope="module")
def fitted(data_file: Path) -> dict[str, Any]:
    """A guard fitted on real rows with a tiny trained model; held-out rows to check."""
    from app.features import columns_from_records

    rows = published_rows(data_file, 4500)
    train, held = rows[:N_TRAIN], rows[N_TRAIN:]
    train_cols = columns_from_records(train)
    spec = FeatureSpec.fit(train_cols)
    x_train = spec.encode(train_cols)
    x_held = spec.encode(columns_from_records(held))
    torch.manual_seed(0)
    model = BayesianMLP(spec.n_features, [16], 0.2)
    model.eval()
    guard = fit_guard(model, train_cols, x_train, x_held, novelty_rate=0.05)
    return {"guard": guard, "spec": spec, "model": model, "held": held, "x_held": x_held}


def _one(fitted: dict[str, Any], **changes: Any) -> tuple[list[str], float]:
    record = {**fitted["held"][0], **changes}
    x = fitted["spec"].encode({k: [v] for k, v in record.items()})
    return fitted["guard"].check([record], x)[0]


def test_feature_flags_do_not_depend_on_the_memo_or_the_batch(fitted: dict[str, Any]) -> None:
    guard = fitted["guard"]
    odd = [None, "?", 3, 3.0, True, "3", " 3 ", "abc", "V45", float("nan"), np.int64(3), 10**6]
    columns = {
        k: [*(r.get(k) for r in fitted["held"][:40]), *odd] for k in FeatureSpec.source_columns()
    }
    batch = guard.feature_flags(columns)  # the memo is warm from the other tests
    assert batch.shape == (52, len(GUARD_COLUMNS)) and batch.flags.c_contiguous
    for i in range(52):
        fresh = DomainGuard.from_dict(guard.to_dict(), fitted["model"])
        alone = fresh.feature_flags({k: v[i : i + 1] for k, v in columns.items()})
        assert np.array_equal(alone[0], batch[i]), i


def test_threshold_flags_the_chosen_share_of_validation(fitted: dict[str, Any]) -> None:
    result = fitted["guard"].check_columns(
        {k: [r.get(k) for r in fitted["held"]] for k in FeatureSpec.source_columns()},
        fitted["x_held"],
    )
    assert result.novel.mean() == pytest.approx(0.05, abs=0.002)


def test_unseen_category_and_out_of_range_count_are_named(fitted: dict[str, Any]) -> None:
    reasons, _ = _one(fitted, race="Martian", num_medications=10_000, diag_1="V99")
    assert "out_of_distribution:race" in reasons
    assert "out_of_distribution:num_medications" in reasons
    assert NOVELTY_REASON in reasons  # 10,000 medications is far from anything seen


def test_malformed_diagnosis_and_never_missing_count_are_named(fitted: dict[str, Any]) -> None:
    reasons, _ = _one(fitted, diag_2="not-a-code", time_in_hospital=None)
    assert "out_of_distribution:diag_2" in reasons
    assert "out_of_distribution:time_in_hospital" in reasons


def test_missing_value_seen_in_training_is_not_a_reason(fitted: dict[str, Any]) -> None:
    reasons, _ = _one(fitted, weight=None, payer_code=None)
    assert not any(r.endswith(("weight", "payer_code")) for r in reasons)


def test_in_range_values_give_no_feature_reason(fitted: dict[str, Any]) -> None:
    reasons = [r for r, _ in fitted["guard"].check(fitted["held"][:200], fitted["x_held"][:200])]
    features = [r for rs in reasons for r in rs if r != NOVELTY_REASON]
    assert len(features) <= 5  # rare values first seen outside the training rows


def test_noise_on_the_encoding_raises_the_novelty_score(fitted: dict[str, Any]) -> None:
    x = fitted["x_held"]
    noisy = x + np.random.default_rng(0).normal(0, 1.0, x.shape).astype(np.float32)
    guard = fitted["guard"]
    assert np.median(guard.novelty(noisy)) > guard.threshold > np.median(guard.novelty(x))


def test_round_trip_through_json_gives_the_same_answers(fitted: dict[str, Any]) -> None:
    guard = fitted["guard"]
    data = json.loads(json.dumps(guard.to_dict()))
    again = DomainGuard.from_dict(data, fitted["model"])
    held, x = fitted["held"][:50], fitted["x_held"][:50]
    before, after = guard.check(held, x), again.check(held, x)
    assert [r for r, _ in before] == [r for r, _ in after]
    assert np.allclose([s for _, s in before], [s for _, s in after], rtol=1e-4)


def test_refuses_another_format(fitted: dict[str, Any]) -> None:
    data = fitted["guard"].to_dict() | {"format": 99}
    with pytest.raises(ValueError, match="format"):
        DomainGuard.from_dict(data, fitted["model"])


def test_checking_does_not_touch_the_model(fitted: dict[str, Any]) -> None:
    model = fitted["model"]
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fitted["guard"].novelty(fitted["x_held"][:10])
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model.eval()


def test_combined_policy_spends_exactly_the_review_rate(fitted: dict[str, Any]) -> None:
    rng = np.random.default_rng(1)
    std = rng.gamma(2.0, 0.01, 5000)
    guard_flags = rng.random(5000) < 0.02
    threshold = fit_std_threshold(std, guard_flags, 0.10)
    assert ((std > threshold) | guard_flags).mean() == pytest.approx(0.10, abs=0.001)
    with pytest.raises(ValueError, match="guard alone"):
        fit_std_threshold(std, rng.random(5000) < 0.2, 0.10)


def test_referral_score_is_above_one_exactly_when_flagged(fitted: dict[str, Any]) -> None:
    guard = fitted["guard"]
    columns = {k: [r.get(k) for r in fitted["held"]] for k in FeatureSpec.source_columns()}
    result = guard.check_columns(columns, fitted["x_held"])
    std = np.random.default_rng(2).gamma(2.0, 0.01, len(fitted["held"]))
    score = referral_score(std, 0.03, result)
    assert np.array_equal(score > 1.0, flagged(std, 0.03, result))
    assert np.array_equal(flagged(std, 0.03, result), (std > 0.03) | result.flagged)


def test_predictor_and_metrics_carry_the_guard_reasons(fitted: dict[str, Any]) -> None:
    from prometheus_client import CollectorRegistry

    from app.inference import MCDropoutEngine
    from app.inference.metrics import observe_predictions
    from app.inference.predictor import Predictor, ScoringRequest
    from app.inference.repository import LoadedModel
    from app.observability.metrics import Metrics

    card = {
        "version": "guard-test",
        "uncertainty": {"threshold": 1.0},  # std never crosses it: only the guard flags
        "mc": {"n_samples": 16, "seed": 1},
        "domain_guard": fitted["guard"].to_dict(),
    }
    loaded = LoadedModel(fitted["model"], fitted["spec"], card, Path("."))
    predictor = Predictor(loaded, MCDropoutEngine(fitted["model"], device="cpu"))
    odd = {**fitted["held"][0], "race": "Martian", "num_medications": 10_000}
    normal, flagged = predictor.predict(
        [ScoringRequest(fitted["held"][1], 16), ScoringRequest(odd, 16)]
    )
    assert flagged.flagged and "out_of_distribution:race" in flagged.reasons
    assert NOVELTY_REASON in flagged.reasons and flagged.novelty > flagged.novelty_threshold
    assert normal.novelty is not None
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    observe_predictions(metrics, [normal, flagged])
    count = registry.get_sample_value
    labels = {"model_version": "guard-test"}
    assert count("triage_flag_reasons_total", labels | {"reason": NOVELTY_REASON}) == 1
    assert (
        count("triage_flag_reasons_total", labels | {"reason": "out_of_distribution:feature"}) == 1
    )
    assert count("triage_novelty_score_count", labels) == 2


def test_reasons_list_flagged_columns_in_order_and_novelty_last() -> None:
    flags = np.zeros((4, len(GUARD_COLUMNS)), dtype=bool)
    flags[1, [0, 3]] = True
    flags[3, 2] = True
    result = GuardResult(flags, np.array([0.5, 0.5, 9.0, 9.0]), 1.0)
    first, fourth, third = (OOD_PREFIX + GUARD_COLUMNS[j] for j in (0, 3, 2))
    assert result.reasons() == [[], [first, fourth], [NOVELTY_REASON], [third, NOVELTY_REASON]]
