"""bioimage.io model packages: export a saved model as one, and import a livedenoise package back.

A package (model description format 0.5, built and validated with ``bioimageio.spec``) holds the ONNX
graph, the card's intensity normalisation (a fixed one as the spec's own pre- and post-processing; a
per-window percentile one, which the spec cannot invert, inside the ONNX graph), a test window and the
output this model gives for it, a cover (raw | denoised), documentation, and, as attachments,
the model's safetensors weights and card, from which ``import_package`` restores the model exactly.
Needs the optional extra ``livedenoise[bioimageio]``; importing this module without it raises
ImportError saying so.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.image import imsave

try:
    from bioimageio.core import test_model
    from bioimageio.spec import InvalidDescr, load_description, save_bioimageio_package
    from bioimageio.spec.common import FileDescr
    from bioimageio.spec.dataset.v0_3 import DatasetDescr
    from bioimageio.spec.generic.v0_3 import Author
    from bioimageio.spec.model import v0_5 as spec
except ImportError as err:  # pragma: no cover - the extra is part of the dev install
    raise ImportError(
        f"bioimage.io packages need the optional extra ({err}); "
        "install it with: pip install 'livedenoise[bioimageio]'"
    ) from err

from livedenoise.acquisition.sample import Sample
from livedenoise.errors import LivedenoiseError
from livedenoise.inference import in_memory_engine
from livedenoise.model import (
    ModelCard,
    ModelFileError,
    Normalization,
    export_onnx,
    find_model,
    load_model,
    model_paths,
)
from livedenoise.model.card import PERCENTILE_SAMPLES
from livedenoise.model.cnnt import MIN_SIZE
from livedenoise.model.onnx_export import OLDEST_IR_VERSION, onnx_metadata

INPUT_ID = spec.TensorId("raw")
OUTPUT_ID = spec.TensorId("denoised")
CARD_FILE = "livedenoise-card.json"
WEIGHTS_FILE = "livedenoise-weights.safetensors"
CONFIG_KEY = "livedenoise"
TEST_FRAMES = 8
TEST_SIZE = 128  # px; never above the card's tile, so the test window is denoised whole
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_+\- ()]")
DESCRIPTION_CHARS = 1024  # the most a dataset description may hold (bioimageio.spec)
CAMERA_UNITS = Normalization(offset=100.0, scale=1000.0)
"""A 16-bit camera's units (offset 100) for the test window of a model without fixed units."""
PACKAGE_OPSET = 17
"""The package graph's opset: deepImageJ's ONNX engine (JDLL, onnxruntime 1.13) implements 17, not 18."""
Processing = list[spec.EnsureDtypeDescr | spec.ScaleLinearDescr]  # all a fixed affine map needs


class PackageError(LivedenoiseError, ValueError):
    """A package that is invalid, or not one livedenoise exported; the message says which and why."""


@dataclass(frozen=True)
class ExportResult:
    """What ``export_package`` wrote and how the package's own test went."""

    path: Path
    weights: list[str]  # weight formats in the package, e.g. ["onnx"]
    test_status: str  # bioimageio.core's verdict on the package's test: "passed" or "failed"
    test_details: str  # the failed checks, one per line ("" when passed)


def spec_processing(norm: Normalization) -> tuple[Processing, Processing]:
    """The card's normalisation as the spec's (preprocessing, postprocessing) of the tensors.

    ``(x - offset) / scale`` before the network is ``scale_linear`` with gain ``1 / scale`` and offset
    ``-offset / scale`` (after casting to float32); its inverse after the network is gain ``scale``,
    offset ``offset``. The identity map (offset 0, scale 1) needs no scaling step, nor does a
    percentile normalisation: the exported graph applies and inverts that itself.
    """
    pre: Processing = [spec.EnsureDtypeDescr(kwargs=spec.EnsureDtypeKwargs(dtype="float32"))]
    post: Processing = []
    if norm.method == "fixed" and (norm.offset, norm.scale) != (0.0, 1.0):
        pre.append(
            spec.ScaleLinearDescr(
                kwargs=spec.ScaleLinearKwargs(gain=1 / norm.scale, offset=-norm.offset / norm.scale)
            )
        )
        post.append(
            spec.ScaleLinearDescr(
                kwargs=spec.ScaleLinearKwargs(gain=norm.scale, offset=norm.offset)
            )
        )
    return pre, post


def test_window(card: ModelCard, seed: int = 0) -> np.ndarray:
    """A noisy window ``[1, T, C, H, W]`` (float32, the card's intensity units) for the package's test.

    T = 8 repeats of one field of the simulated specimen (channel c shows fluorophore c), with Poisson
    noise of about 20 photons at the brightest pixel, mapped to the card's range by its fixed
    normalisation, or to a 16-bit camera's (``CAMERA_UNITS``) for a model that normalises each window.
    H = W = 128 px, or the card's tile if smaller.
    """
    size = min(TEST_SIZE, card.tile or TEST_SIZE)
    sample = Sample(seed)
    clean = np.stack(
        [
            sample.render(1 + c % 3, 22.5, 22.5, 0.2, (size, size), 0.0)
            for c in range(card.config.channels)
        ]
    )
    rng = np.random.default_rng(seed)
    peak = 20.0 / float(clean.max())
    photons = rng.poisson(clean * peak, size=(TEST_FRAMES, *clean.shape)) / peak
    units = card.normalization if card.normalization.method == "fixed" else CAMERA_UNITS
    return units.inverse(photons[None])


def export_package(
    model: str | Path,
    out: Path,
    *,
    license: str = "BSD-3-Clause",
    authors: list[str] | None = None,
) -> ExportResult:
    """Write ``model`` as a bioimage.io model package (zip) at ``out`` and run the package's own test.

    ``license`` is an SPDX id; ``authors`` name the people who made the model. The test window and its
    expected output come from this model on the torch backend; bioimageio.core then runs the package
    (ONNX) on it. A percentile normalisation has no inverse among the spec's postprocessing steps, so
    the graph itself normalises each window and maps the output back (``onnx_export.Normalised``).
    Raises ``ModelFileError`` for a broken model and ``PackageError`` if the spec library refuses the
    package (e.g. an unknown licence id).
    """
    net, card = load_model(model)
    in_graph = card.normalization.method != "fixed"
    weights, card_path = model_paths(find_model(model))
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        raw = test_window(card)
        denoised = in_memory_engine(net, card.normalization, card.tile).denoise(raw)
        np.save(work / "test_input.npy", raw)
        np.save(work / "test_output.npy", denoised)
        _write_cover(raw, denoised, work / "cover.png")
        export_onnx(
            net,
            work / "weights.onnx",
            metadata=onnx_metadata(card, normalised=in_graph),
            normalization=card.normalization if in_graph else None,
            opset=PACKAGE_OPSET,
            ir_version=OLDEST_IR_VERSION,  # loads in older runtimes, as deepImageJ's
        )
        shutil.copyfile(weights, work / WEIGHTS_FILE)
        shutil.copyfile(card_path, work / CARD_FILE)
        (work / "README.md").write_text(documentation(card))
        try:
            descr = _describe(card, work, license, authors or [])
            save_bioimageio_package(descr, output_path=out)
        except ValueError as err:
            raise PackageError(f"the spec library refused the package: {err}") from None
    summary = test_model(out)
    failed = [
        f"{d.name}: {'; '.join(e.msg for e in d.errors)}"
        for d in summary.details
        if d.status == "failed"
    ]
    return ExportResult(out, ["onnx"], summary.status, "\n".join(failed))


def _describe(card: ModelCard, work: Path, license: str, authors: list[str]) -> spec.ModelDescr:
    """The package's model description, every file in ``work``."""
    pre, post = spec_processing(card.normalization)
    channels = spec.ChannelAxis(channel_names=[f"channel{c}" for c in range(card.config.channels)])
    frames = "frames of one window (time points or z-slices); the model attends across them"
    space = spec.ParameterizedSize(min=MIN_SIZE, step=1)

    def same(axis: str) -> spec.SizeReference:
        return spec.SizeReference(tensor_id=INPUT_ID, axis_id=spec.AxisId(axis))

    input_axes = [
        spec.BatchAxis(),
        spec.TimeInputAxis(size=spec.ParameterizedSize(min=1, step=1), description=frames),
        channels,
        spec.SpaceInputAxis(id=spec.AxisId("y"), size=space),
        spec.SpaceInputAxis(id=spec.AxisId("x"), size=space),
    ]
    output_axes = [
        spec.BatchAxis(),
        spec.TimeOutputAxis(size=same("time"), description=frames),
        channels,
        spec.SpaceOutputAxis(id=spec.AxisId("y"), size=same("y")),
        spec.SpaceOutputAxis(id=spec.AxisId("x"), size=same("x")),
    ]
    return spec.ModelDescr(
        name=_NAME_CHARS.sub("-", f"livedenoise {card.name}")[:64],
        description=(
            f"CNNT denoiser for fluorescence microscopy frames, exported from livedenoise "
            f"(model {card.lineage})."
        ),
        authors=[Author(name=a) for a in authors],
        license=license,
        tags=["denoising", "fluorescence-light-microscopy", "2d", "time-series", "cnnt", "onnx"],
        documentation=FileDescr(source=work / "README.md"),
        covers=[FileDescr(source=work / "cover.png")],
        attachments=[FileDescr(source=work / WEIGHTS_FILE), FileDescr(source=work / CARD_FILE)],
        inputs=[
            spec.InputTensorDescr(
                id=INPUT_ID,
                description="noisy frames in the detector's intensity units",
                axes=input_axes,
                test_tensor=FileDescr(source=work / "test_input.npy"),
                preprocessing=pre,
            )
        ],
        outputs=[
            spec.OutputTensorDescr(
                id=OUTPUT_ID,
                description="denoised frames in the input's intensity units",
                axes=output_axes,
                test_tensor=FileDescr(source=work / "test_output.npy"),
                postprocessing=post,
            )
        ],
        weights=spec.WeightsDescr(
            onnx=spec.OnnxWeightsDescr(source=work / "weights.onnx", opset_version=PACKAGE_OPSET)
        ),
        training_data=DatasetDescr(
            name=f"training data of {card.name}"[:128],
            description=_training_summary(card),
        ),
        config=spec.Config(
            bioimageio=spec.BioimageioConfig(
                architecture_type="CNNT",
                architecture_description="Convolutional Neural Network Transformer (Rehman et al., Sci Rep 2024), livedenoise implementation",
                task="denoising",
                modality="fluorescence microscopy",
            ),
            **{CONFIG_KEY: card.model_dump(mode="json")},
        ),
    )


def _training_summary(card: ModelCard) -> str:
    """The card's training data within the spec's 1024 characters; the package README lists it all."""
    text = "; ".join(card.trained_on) or "not recorded in the model card"
    if len(text) <= DESCRIPTION_CHARS:
        return text
    return text[: DESCRIPTION_CHARS - 40].rsplit("; ", 1)[0] + "; ... (all of it in the README)"


def documentation(card: ModelCard) -> str:
    """The package's README.md: what the model is, how to feed it, where it came from, how to check it."""
    norm = card.normalization
    tile = (
        f"It was trained on {card.tile} px tiles; livedenoise denoises larger frames in blended "
        f"{card.tile} px tiles, so feed frames of about that size for the same result."
        if card.tile
        else "It takes whole frames of any size."
    )
    trained_on = "\n".join(f"- {item}" for item in card.trained_on) or "- not recorded"
    return f"""# {card.name}

A CNNT (Convolutional Neural Network Transformer, Rehman et al., Sci Rep 14:18184, 2024) denoiser for
fluorescence microscopy, exported from livedenoise. Weights sha256 `{card.weights_sha256}`; parent
model: {card.parent or "none (trained from scratch)"}.

## Input and output

`raw` is `[batch, time, channel, y, x]`: a window of frames of one field (time points or z-slices) in
the detector's intensity units, at least {MIN_SIZE} px on a side. The network attends across the
window's frames: give it about 8 at a time (a longer recording in overlapping windows of about 8
frames, as livedenoise does). {tile} `denoised` has the input's shape
and intensity units.

{_normalization_text(norm)} Nothing else is needed.

## Training data

{trained_on}

{card.notes}

## Validation

The package's test input (8 noisy repeats of a simulated field) and its expected output were made with
this model by livedenoise; `bioimageio test` reproduces them. Card metrics:
{", ".join(f"{k} {v:.4g}" for k, v in card.metrics.items()) or "none recorded"}.
"""


def _normalization_text(norm: Normalization) -> str:
    """How the package maps intensities in and out, for its README."""
    if norm.method == "fixed":
        return (
            f"The package's preprocessing casts to float32 and scales `(x - {norm.offset!r}) / "
            f"{norm.scale!r}`; its postprocessing maps the network's output back "
            f"(`y * {norm.scale!r} + {norm.offset!r}`)."
        )
    low, high = norm.percentiles
    return (
        f"The ONNX graph normalises each window itself, as livedenoise does: per channel, the "
        f"{low:g} and {high:g} percentiles of all the window's frames (a regular subsample of rows and "
        f"columns beyond {PERCENTILE_SAMPLES} px a channel) map to 0 and 1, and the network's output is mapped back "
        "with the same numbers. So any window, in any camera's units, goes in as it is."
    )


def _write_cover(raw: np.ndarray, denoised: np.ndarray, path: Path) -> None:
    """raw | denoised: the middle frame of the first channel, both in the raw frame's display range."""
    t = raw.shape[1] // 2
    lo, hi = np.percentile(raw[0, t, 0], (0.5, 99.8))
    side_by_side = np.concatenate([raw[0, t, 0], denoised[0, t, 0]], axis=1)
    imsave(path, side_by_side, cmap="gray", vmin=lo, vmax=hi)


def import_package(package: Path, out: Path) -> ModelCard:
    """Restore the model in a package ``export_package`` wrote as ``out.safetensors`` + ``out.json``.

    Every file's sha256 is checked against the package's description, and the weights against the
    card. Raises ``PackageError`` for an invalid package or one of another architecture,
    ``ModelFileError`` if ``out`` exists or the restored model does not load.
    """
    descr = load_description(package, perform_io_checks=True)
    if isinstance(descr, InvalidDescr):
        raise PackageError(
            f"{package}: not a valid bioimage.io package:\n{descr.get_reason()}", path=package
        )
    if not isinstance(descr, spec.ModelDescr):
        raise PackageError(
            f"{package}: a {descr.type} description of format {descr.format_version}, not a "
            "livedenoise CNNT package (bioimage.io model format 0.5).",
            path=package,
        )
    files = {Path(str(f.source)).name: f for f in descr.attachments}
    if not {CARD_FILE, WEIGHTS_FILE} <= set(files):
        kind = descr.config.bioimageio.architecture_type or "not stated"
        raise PackageError(
            f"{package}: {descr.name!r} is not a livedenoise CNNT package (architecture: {kind}; "
            f"no {CARD_FILE} and {WEIGHTS_FILE} attached), so livedenoise cannot load it; run it "
            "with bioimageio.core or deepImageJ instead.",
            path=package,
        )
    weights, card_path = model_paths(out)
    for target in (weights, card_path):
        if target.exists():
            raise ModelFileError(
                f"{target} exists",
                hint="restore the model under another name, or remove that file",
                option="out",
                path=target,
            )
    weights.parent.mkdir(parents=True, exist_ok=True)
    try:
        weights.write_bytes(files[WEIGHTS_FILE].get_reader().read())
        card_path.write_bytes(files[CARD_FILE].get_reader().read())
        return load_model(out)[1]
    except (ModelFileError, OSError):
        weights.unlink(missing_ok=True)
        card_path.unlink(missing_ok=True)
        raise
