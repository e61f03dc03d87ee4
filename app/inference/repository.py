"""The model repository: `models/readmission/<version>/{model.safetensors, model.json}`.

Weights are safetensors and the card is JSON, so loading runs no pickle. The card records the
weights' sha256 and loading refuses a file that does not match it.
"""

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from safetensors.torch import load_file, save_file

from app.core.config import DEFAULT_MODEL_REPOSITORY
from app.features.encoder import FeatureSpec
from app.inference.model import BayesianMLP

WEIGHTS_FILE: Final = "model.safetensors"
CARD_FILE: Final = "model.json"
DEFAULT_REPOSITORY: Final = DEFAULT_MODEL_REPOSITORY


class ModelLoadError(RuntimeError):
    """The model on disk is missing, malformed or does not match its card."""


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to serve: the network, its encoding and its card."""

    model: BayesianMLP
    spec: FeatureSpec
    card: Mapping[str, Any]
    directory: Path

    @property
    def version(self) -> str:
        """The model version named in the card."""
        return str(self.card["version"])


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _version_key(name: str) -> tuple[Any, ...]:
    # Natural sort, so "2026.11.10" > "2026.11.9".
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def latest_version_dir(repository: Path = DEFAULT_REPOSITORY) -> Path:
    """Return the newest version folder that holds a card."""
    versions = [d for d in repository.glob("*") if (d / CARD_FILE).is_file()]
    if not versions:
        raise ModelLoadError(f"no model versions with a {CARD_FILE} under {repository}")
    return max(versions, key=lambda d: _version_key(d.name))


def resolve_model_dir(model_dir: Path | None, repository: Path = DEFAULT_REPOSITORY) -> Path:
    """The model folder to load: `model_dir` when given, else the newest under `repository`."""
    return model_dir if model_dir is not None else latest_version_dir(repository)


def save_model(model: BayesianMLP, card: Mapping[str, Any], directory: Path) -> dict[str, Any]:
    """Write weights and card; the card gains the weights' sha256. Returns the card written."""
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS_FILE
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(weights))
    full = dict(card)
    full["weights_sha256"] = sha256_file(weights)
    full["architecture"] = {
        "type": "BayesianMLP",
        "in_features": model.in_features,
        "hidden": list(model.hidden),
        "p": model.p,
    }
    (directory / CARD_FILE).write_text(json.dumps(full, indent=2, sort_keys=False) + "\n")
    return full


def read_card(directory: Path) -> dict[str, Any]:
    """Read a model card, with a clear error when it is absent or not JSON."""
    path = directory / CARD_FILE
    try:
        card: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ModelLoadError(f"model card {path} does not exist") from exc
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"model card {path} is not valid JSON: {exc}") from exc
    return card


def write_card(directory: Path, card: Mapping[str, Any]) -> None:
    """Rewrite a card in place (recalibration), keeping the weights untouched."""
    (directory / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")


def load_model(directory: Path) -> LoadedModel:
    """Load a model version, verifying the weights against the card's sha256."""
    card = read_card(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelLoadError(f"weights file {weights} does not exist")
    expected = card.get("weights_sha256")
    actual = sha256_file(weights)
    if expected != actual:
        raise ModelLoadError(
            f"weights checksum mismatch for {weights}: card says {expected}, file is {actual}; "
            "the file is corrupt or was replaced, so the model is refused"
        )
    try:
        arch = card["architecture"]
        spec = FeatureSpec.from_dict(card["feature_spec"])
        model = BayesianMLP(
            int(arch["in_features"]), [int(h) for h in arch["hidden"]], float(arch["p"])
        )
        model.load_state_dict(load_file(str(weights)))
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"model at {directory} does not match its card: {exc}") from exc
    if spec.n_features != model.in_features:
        raise ModelLoadError(
            f"feature spec gives {spec.n_features} features but the model takes {model.in_features}"
        )
    model.eval()
    return LoadedModel(model=model, spec=spec, card=card, directory=directory)
