"""A corrupt or tampered model never serves: start-up stops with a clear error, never ready."""

import contextlib
import json
import shutil
import time
from pathlib import Path

import httpx
import pytest
import torch
from safetensors.torch import load_file, save_file

from app.core.config import Settings
from app.inference.repository import CARD_FILE, WEIGHTS_FILE, ModelLoadError
from app.main import create_app
from tests.support import triage_serve

pytestmark = pytest.mark.data


def _copy(model_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(model_dir, tmp_path / "model"))


def _flip_a_byte(directory: Path) -> None:
    weights = directory / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x01  # a single bit inside the tensor data: still loads, silently wrong
    weights.write_bytes(bytes(data))


def _replace_weights(directory: Path) -> None:
    """A well-formed weights file with the same shapes but other values (a swapped model)."""
    weights = directory / WEIGHTS_FILE
    state = {k: torch.zeros_like(v) for k, v in load_file(str(weights)).items()}
    save_file(state, str(weights))


def _truncate(directory: Path) -> None:
    weights = directory / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:100])


def _break_card(directory: Path) -> None:
    (directory / CARD_FILE).write_text('{"version": "x", ')


def _card_claims_other_shapes(directory: Path) -> None:
    """A card edited to match the weights' hash but describing another network."""
    card = json.loads((directory / CARD_FILE).read_text())
    card["architecture"]["hidden"] = [7]
    (directory / CARD_FILE).write_text(json.dumps(card))


DAMAGE = {
    "bit flip": (_flip_a_byte, "checksum mismatch"),
    "swapped weights": (_replace_weights, "checksum mismatch"),
    "truncated weights": (_truncate, "checksum mismatch"),
    "card not JSON": (_break_card, "not valid JSON"),
    "card and weights disagree": (_card_claims_other_shapes, "does not match its card"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
async def test_start_up_stops_with_a_clear_error(
    model_dir: Path, tmp_path: Path, damage: str
) -> None:
    broken = _copy(model_dir, tmp_path)
    harm, message = DAMAGE[damage]
    harm(broken)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 't.db'}", model_dir=broken)
    app = create_app(settings)
    with pytest.raises(ModelLoadError, match=message):
        async with app.router.lifespan_context(app):
            pytest.fail("the lifespan started with a damaged model")
    assert app.state.predictor is None


@pytest.mark.slow
def test_served_process_exits_and_is_never_ready(
    model_dir: Path, tmp_path: Path, sqlite_with_keys: tuple[str, dict[str, str]]
) -> None:
    broken = _copy(model_dir, tmp_path)
    _replace_weights(broken)
    url, _ = sqlite_with_keys
    with triage_serve(database_url=url, model_dir=broken, log_dir=tmp_path, ready=False) as server:
        ready_answers = []
        deadline = time.monotonic() + 90
        while server.popen.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                ready_answers.append(httpx.get(server.base_url + "/readyz", timeout=1).status_code)
            time.sleep(0.1)
        code = server.popen.poll()
        log = server.log()
    assert code is not None and code != 0, "the service kept running with a tampered model"
    assert 200 not in ready_answers
    assert "checksum mismatch" in log and "model.safetensors" in log
