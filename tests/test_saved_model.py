"""Saved models: exact round trip, lineage, and clear errors for broken files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from livedenoise.errors import LivedenoiseError
from livedenoise.model import (
    ModelCard,
    ModelFileError,
    build_model,
    check_model_output,
    load_card,
    load_model,
    model_paths,
    preset,
    save_model,
    shipped_models,
)


@pytest.fixture
def model_copy(small_model_path: Path, tmp_path: Path) -> Path:
    for src in model_paths(small_model_path):
        shutil.copy(src, tmp_path / src.name)
    return tmp_path / small_model_path.name


def test_reloaded_model_gives_identical_output(tmp_path: Path) -> None:
    cfg = preset("small", channels=2)
    model = build_model(cfg, seed=5).eval()
    card = save_model(model, ModelCard(name="m", config=cfg, trained_on=["x"]), tmp_path / "m")
    loaded, loaded_card = load_model(tmp_path / "m.safetensors")
    x = torch.rand(1, 3, 2, 40, 36)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert loaded_card == card
    assert len(card.weights_sha256) == 64


def test_child_card_records_parent_lineage(tmp_path: Path, small_model_path: Path) -> None:
    model, parent = load_model(small_model_path)
    child = ModelCard(name="child", config=parent.config, parent=parent.lineage)
    save_model(model, child, tmp_path / "child")
    _, reloaded = load_model(tmp_path / "child")
    assert reloaded.parent == f"small@{parent.weights_sha256[:12]}"


def test_corrupt_weights_are_refused_naming_the_file(model_copy: Path) -> None:
    weights, _ = model_paths(model_copy)
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"small\.safetensors.*corrupt"):
        load_model(model_copy)


def test_truncated_weights_with_matching_hash_are_refused(model_copy: Path) -> None:
    weights, card_path = model_paths(model_copy)
    weights.write_bytes(weights.read_bytes()[:1000])
    card = json.loads(card_path.read_text())
    from livedenoise.hashing import file_sha256

    card["weights_sha256"] = file_sha256(weights)
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelFileError, match="not a readable safetensors file"):
        load_model(model_copy)


def test_weights_that_do_not_fit_the_card_are_refused(model_copy: Path) -> None:
    _, card_path = model_paths(model_copy)
    card = json.loads(card_path.read_text())
    card["config"]["block_channels"] = [16, 32, 64]
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelFileError, match="do not fit the architecture"):
        load_model(model_copy)


def test_missing_or_broken_card_is_refused(model_copy: Path) -> None:
    _, card_path = model_paths(model_copy)
    card_path.write_text("{not json")
    with pytest.raises(ModelFileError, match=r"small\.json.*not valid JSON"):
        load_model(model_copy)
    card_path.unlink()
    with pytest.raises(ModelFileError, match="model card not found"):
        load_model(model_copy)


def test_shipped_models_load_by_bare_name_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert shipped_models() == ["backbone-small", "sim-confocal-small"]
    _, backbone = load_model("backbone-small")  # hash, keys and shapes checked as for any model
    _, child = load_model("sim-confocal-small.safetensors")
    # the simulator's model names the backbone it was fine-tuned from (an earlier backbone-small)
    assert child.parent is not None and child.parent.startswith(f"{backbone.name}@")
    assert load_card("backbone-small.json") == backbone


def test_a_file_in_the_working_folder_wins_over_a_shipped_name(
    model_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for src in model_paths(model_copy):
        src.rename(src.with_name("backbone-small" + src.suffix))
    monkeypatch.chdir(model_copy.parent)
    assert load_card("backbone-small").name == "small"


def test_unknown_model_error_lists_the_shipped_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelFileError, match="backbone-small, sim-confocal-small"):
        load_model("backbone-smal")


def test_a_refused_model_output_names_the_parameter_not_a_flag(
    model_copy: Path, tmp_path: Path
) -> None:
    """The library says which parameter fixes it; only the command line turns that into a flag."""
    with pytest.raises(ModelFileError, match="exists; replace that model") as err:
        check_model_output(model_copy)
    assert (err.value.option, err.value.path) == ("overwrite", model_paths(model_copy)[0])
    with pytest.raises(ModelFileError, match="shipped model's name") as err:
        check_model_output(tmp_path / "backbone-small")
    assert err.value.option == "out"
    data = tmp_path / "pairs"
    with pytest.raises(ModelFileError, match=r"output .* lies inside the training data") as err:
        check_model_output(data / "model", [("training data", data)])
    assert err.value.option == "out"
    for refused in (model_copy, tmp_path / "backbone-small"):
        with pytest.raises(LivedenoiseError) as err:
            check_model_output(refused)
        assert "--" not in str(err.value)
