"""Fine-tuned models a user can always load, share and keep (issue 28: 6, 16; --out replacing a model).

Pairs are crops of the real confocal pairs (FMD); the backbone is a tiny CNNT, trained for a few steps.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from livedenoise.cli import app
from livedenoise.model import (
    ModelCard,
    ModelFileError,
    build_model,
    load_model,
    model_paths,
    preset,
    save_model,
)

PAIRS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pairs"
REAL = ("confocal_BPAE_G.tif", "confocal_fish.tif")
TINY = preset("small", stem_channels=4, block_channels=(4, 8, 8), heads=2)

runner = CliRunner()


@pytest.fixture(scope="module")
def backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("backbone") / "tiny-backbone"
    save_model(build_model(TINY, seed=3), ModelCard(name="tiny-backbone", config=TINY), path)
    return path


@pytest.fixture
def umask() -> Iterator[None]:
    """The usual umask 022 for the test, whatever the runner's."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def pairs_folder(folder: Path, blank: tuple[str, ...] = ()) -> Path:
    """96x96 crops of real confocal pairs, plus ``blank`` pairs of one value (an empty field)."""
    for sub in ("noisy", "clean"):
        (folder / sub).mkdir(parents=True)
        for name in REAL:
            crop = tifffile.imread(PAIRS / sub / name)[200:296, 200:296].astype(np.float32)
            tifffile.imwrite(folder / sub / name, crop)
        for name in blank:
            tifffile.imwrite(folder / sub / name, np.full((96, 96), 7, np.float32))
    return folder


def finetune(*args: object) -> tuple[int, str]:
    result = runner.invoke(app, ["finetune", *map(str, args)], terminal_width=200)
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_a_blank_pair_is_skipped_by_name_and_the_model_loads(
    backbone: Path, tmp_path: Path, umask: None
) -> None:
    folder = pairs_folder(tmp_path / "pairs", blank=("empty_field.tif",))
    out = tmp_path / "tuned"
    code, output = finetune(folder, "--out", out, "--backbone", backbone, "--epochs", "1")
    assert code == 0, output
    assert "skipped 1 blank pair(s)" in output and "empty_field.tif" in output
    assert "inf" not in output and "nan" not in output
    _, card = load_model(out)  # as denoise and info load it
    assert all(math.isfinite(value) for value in card.metrics.values())
    assert "heldout_psnr_finetuned" in card.metrics
    assert not any("empty_field" in source for source in card.trained_on)
    assert len(card.trained_on) == len(REAL)
    info = runner.invoke(app, ["info", str(out)])
    assert info.exit_code == 0, info.output
    # shared microscope PCs: the weights are as readable as the card (issue 28 #16)
    weights, card_file = model_paths(out)
    assert stat.S_IMODE(weights.stat().st_mode) == stat.S_IMODE(card_file.stat().st_mode) == 0o644


def test_only_blank_pairs_are_refused_in_one_line(backbone: Path, tmp_path: Path) -> None:
    folder = tmp_path / "pairs"
    for sub in ("noisy", "clean"):
        (folder / sub).mkdir(parents=True)
        tifffile.imwrite(folder / sub / "dark.tif", np.zeros((96, 96), np.float32))
    code, output = finetune(folder, "--out", tmp_path / "m", "--backbone", backbone)
    assert code == 1 and "every pair is blank" in output and "dark.tif" in output
    assert len(output.strip().splitlines()) == 1, output
    assert not model_paths(tmp_path / "m")[0].exists()


@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_a_card_the_loader_would_refuse_is_never_written(tmp_path: Path, value: float) -> None:
    card = ModelCard(name="m", config=TINY, metrics={"heldout_psnr": value})
    with pytest.raises(ModelFileError, match="heldout_psnr"):
        save_model(build_model(TINY, seed=1), card, tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_saved_weights_and_card_follow_the_umask(tmp_path: Path, mask: int, mode: int) -> None:
    old = os.umask(mask)
    try:
        save_model(build_model(TINY, seed=1), ModelCard(name="m", config=TINY), tmp_path / "m")
    finally:
        os.umask(old)
    for file in model_paths(tmp_path / "m"):
        assert stat.S_IMODE(file.stat().st_mode) == mode, file
    load_model(tmp_path / "m")


def test_finetune_replaces_a_model_only_with_overwrite(backbone: Path, tmp_path: Path) -> None:
    folder = pairs_folder(tmp_path / "pairs")
    out = tmp_path / "mine"
    save_model(build_model(TINY, seed=9), ModelCard(name="mine", config=TINY), out)
    before = [file.read_bytes() for file in model_paths(out)]
    args = (folder, "--out", out, "--backbone", backbone, "--epochs", "1")
    code, output = finetune(*args)
    assert code == 1 and "exists" in output and "--overwrite" in output, output
    assert len(output.strip().splitlines()) == 1 and "fine-tuning" not in output  # before training
    assert [file.read_bytes() for file in model_paths(out)] == before
    code, output = finetune(*args, "--overwrite")
    assert code == 0, output
    assert load_model(out)[1].parent == load_model(backbone)[1].lineage


@pytest.mark.parametrize(
    ("out", "message"),
    [("pairs/noisy/tuned", "lies inside the training data"), ("backbone", "is the backbone")],
)
def test_finetune_never_writes_over_its_data_or_backbone(
    backbone: Path, tmp_path: Path, out: str, message: str
) -> None:
    folder = pairs_folder(tmp_path / "pairs")
    target = backbone if out == "backbone" else tmp_path / out
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    before = [p.read_bytes() for p in files] + [p.read_bytes() for p in model_paths(backbone)]
    code, output = finetune(folder, "--out", target, "--backbone", backbone, "--overwrite")
    assert code == 1 and message in output, output
    after = [p.read_bytes() for p in files] + [p.read_bytes() for p in model_paths(backbone)]
    assert after == before and sorted(p for p in tmp_path.rglob("*") if p.is_file()) == files


def _digest(path: Path) -> bytes:
    return path.read_bytes()


def test_export_never_replaces_a_file_without_overwrite(small_model_path: Path, tmp_path: Path):
    """From the fresh-user trial: `export --out victim.tif` turned a user's TIFF into a graph."""
    victim = tmp_path / "victim.tif"
    tifffile.imwrite(victim, np.arange(64, dtype=np.uint16).reshape(8, 8))
    before = _digest(victim)
    package = tmp_path / "package.zip"
    package.write_bytes(before)
    for fmt, out in (("onnx", victim), ("bioimageio", package)):
        result = runner.invoke(
            app, ["export", str(small_model_path), "--format", fmt, "--out", str(out)]
        )
        assert result.exit_code == 1 and "pass --overwrite" in result.output, result.output
        assert _digest(out) == before
    folder = tmp_path / "exports"
    folder.mkdir()
    for out in (folder, victim / "model.onnx"):
        result = runner.invoke(app, ["export", str(small_model_path), "--out", str(out)])
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1, result.output


def test_new_never_replaces_a_model_without_overwrite(
    small_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    first = runner.invoke(app, ["new", "mine", "--seed", "1"])
    assert first.exit_code == 0, first.output
    weights = tmp_path / "mine.safetensors"
    before = _digest(weights)
    again = runner.invoke(app, ["new", "mine", "--seed", "2"])
    assert again.exit_code == 1 and "(--overwrite)" in again.output, again.output
    assert _digest(weights) == before
    replaced = runner.invoke(app, ["new", "mine", "--seed", "2", "--overwrite"])
    assert replaced.exit_code == 0 and _digest(weights) != before


@pytest.mark.parametrize("command", [["new"], ["finetune", "pairs", "--minutes", "0.05", "--out"]])
def test_a_new_model_never_takes_a_shipped_models_name(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model saved as backbone-small in a folder is loaded there instead of the shipped one
    (every default that names it would silently use it): refused before any work."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pairs").mkdir()
    for name in ("backbone-small", "BACKBONE-SMALL"):
        result = runner.invoke(app, [*command, name])
        assert result.exit_code == 1 and "shipped model's name" in result.output, result.output
    assert list(tmp_path.glob("backbone-small*")) == []


def test_export_to_a_folder_suggests_a_file_of_the_format(
    small_model_path: Path, tmp_path: Path
) -> None:
    """From the fresh-user trial: a bioimage.io export into a folder suggested a .onnx file."""
    for fmt, suffix in (("onnx", ".onnx"), ("bioimageio", ".zip")):
        args = ["export", str(small_model_path), "--format", fmt, "--out", str(tmp_path)]
        result = runner.invoke(app, args)
        assert result.exit_code == 1, result.output
        assert f"model{suffix}" in result.output.replace("\n", ""), result.output
