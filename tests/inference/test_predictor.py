"""The Predictor: one engine call per (n_samples, seed) group, calibration and the flag rule."""

from typing import Any

import numpy as np
import pytest
import torch

from app.inference import MCDropoutEngine
from app.inference.calibration import calibrate
from app.inference.flags import HIGH_UNCERTAINTY, reasons
from app.inference.predictor import Predictor, ScoringRequest
from app.inference.repository import latest_version_dir, load_model

pytestmark = pytest.mark.data


class CountingEngine:
    def __init__(self, engine: MCDropoutEngine) -> None:
        self.engine = engine
        self.calls: list[tuple[int, int, int | None]] = []

    def predict(self, x: torch.Tensor, *, n_samples: int, seed: int | None = None) -> Any:
        self.calls.append((x.shape[0], n_samples, seed))
        return self.engine.predict(x, n_samples=n_samples, seed=seed)


def test_groups_calibrates_and_flags(model_dir, encounters) -> None:
    loaded = load_model(model_dir)
    loaded.card["calibration"] = {"method": "platt", "a": 0.816, "b": -0.2}  # the shipped slope
    engine = CountingEngine(MCDropoutEngine(loaded.model, device="cpu", default_seed=7))
    predictor = Predictor(loaded, engine)
    records = encounters[:6]
    requests = [
        ScoringRequest(records[0], 64),
        ScoringRequest(records[1], 32, 5),
        ScoringRequest(records[2], 64),
        ScoringRequest(records[3], 32, 5),
        ScoringRequest(records[4], 64, 9),
        ScoringRequest(records[5], 64),
    ]
    out = predictor.predict(requests)
    assert sorted(engine.calls) == sorted([(3, 64, None), (2, 32, 5), (1, 64, 9)])
    assert [p.n_samples for p in out] == [64, 32, 64, 32, 64, 64]
    assert [p.seed for p in out] == [7, 5, 7, 5, 9, 7]
    alone = predictor.predict([ScoringRequest(records[2], 64)])[0]
    assert alone == out[2]  # same answer whatever it was grouped with
    raw = engine.engine.predict(
        torch.from_numpy(loaded.spec.encode({k: [v] for k, v in _columns(records[2]).items()})),
        n_samples=64,
    )
    expected = calibrate(raw.mean.double().numpy(), loaded.card["calibration"])[0]
    assert out[2].probability == pytest.approx(float(expected))
    # The band is the engine's percentiles on the calibrated scale, where the risk is.
    ends = torch.cat([raw.band_low, raw.band_high]).double().numpy()
    band = calibrate(ends, loaded.card["calibration"])
    assert not (band == ends).all()
    assert (out[2].band_low, out[2].band_high) == pytest.approx(tuple(band.tolist()))
    assert out[2].band_low < out[2].band_high
    for p in out:
        assert p.flagged == (p.std > p.threshold) == (p.reasons == (HIGH_UNCERTAINTY,))
        assert p.model_version == "test-0.1"


def _columns(record: dict[str, Any]) -> dict[str, Any]:
    from app.features import columns_from_records

    return {k: v[0] for k, v in columns_from_records([record]).items()}


def test_flag_rule_is_strictly_above_the_threshold() -> None:
    assert reasons(np.array([0.05, 0.0501]), 0.05) == [(), (HIGH_UNCERTAINTY,)]


def test_the_guard_scores_the_engines_activations_as_its_own(encounters) -> None:
    from app.features import columns_from_records

    loaded = load_model(latest_version_dir())  # the shipped model: it has a domain guard
    predictor = Predictor(loaded, MCDropoutEngine(loaded.model, device="cpu"))
    assert predictor.guard is not None
    for records in (encounters[:1], encounters[:40]):
        out = predictor.predict([ScoringRequest(r, 64) for r in records])
        x = loaded.spec.encode(columns_from_records(records))
        assert [p.novelty for p in out] == predictor.guard.novelty(x).tolist()


def _decision_card(loaded: Any, level: float, action_threshold: float) -> None:
    loaded.card["calibration"] = {"method": "platt", "a": 0.816, "b": -0.2}
    loaded.card["decision"] = {
        "action_threshold": action_threshold, "measure": "decision_flip", "level": level,
        "review_rate": 0.2, "fitted_on": "validation",
    }  # fmt: skip


def test_decision_card_flags_cases_whose_decision_could_flip(model_dir, encounters) -> None:
    from app.features import columns_from_records

    loaded = load_model(model_dir)
    _decision_card(loaded, level=0.1, action_threshold=0.12)
    engine = MCDropoutEngine(loaded.model, device="cpu", default_seed=7)
    predictor = Predictor(loaded, engine)
    records = encounters[:40]
    out = predictor.predict([ScoringRequest(r, 64) for r in records])
    # The flip share is the calibrated passes' share on the other side of the threshold.
    x = torch.from_numpy(loaded.spec.encode(columns_from_records(records)))
    logits = engine.pass_logits(x, n_samples=64).astype(np.float64)
    passes = calibrate(1.0 / (1.0 + np.exp(-logits)), loaded.card["calibration"])
    for p, row in zip(out, passes, strict=True):
        acting = p.probability >= 0.12
        assert p.recommended_action == ("above" if acting else "below")
        other = (row < 0.12).mean() if acting else (row >= 0.12).mean()
        assert p.decision_flip_probability == pytest.approx(other, abs=1.5 / 64)
        assert p.action_threshold == 0.12 and p.threshold == 0.1
        assert p.flagged == (p.decision_flip_probability > 0.1)
        assert p.reasons == (("decision_uncertain",) if p.flagged else ())
    assert any(p.flagged for p in out) and not all(p.flagged for p in out)
    alone = predictor.predict([ScoringRequest(records[5], 64)])[0]
    assert alone == out[5]  # the flip share is batch-invariant like the band


def test_the_action_threshold_setting_moves_the_action_not_the_level(model_dir, encounters):
    loaded = load_model(model_dir)
    _decision_card(loaded, level=0.1, action_threshold=0.12)
    engine = MCDropoutEngine(loaded.model, device="cpu", default_seed=7)
    moved = Predictor(loaded, engine, action_threshold=0.99)
    out = moved.predict([ScoringRequest(r, 64) for r in encounters[:20]])
    assert {p.recommended_action for p in out} == {"below"}
    assert {(p.action_threshold, p.threshold) for p in out} == {(0.99, 0.1)}
    # A card without a decision block keeps the std rule but still answers the action.
    plain = Predictor(load_model(model_dir), engine, action_threshold=0.5)
    p = plain.predict([ScoringRequest(encounters[0], 64)])[0]
    assert p.action_threshold == 0.5 and p.recommended_action in {"above", "below"}
    assert p.flagged == (p.std > p.threshold)
    assert (
        Predictor(load_model(model_dir), engine)
        .predict([ScoringRequest(encounters[0], 64)])[0]
        .recommended_action
        is None
    )
