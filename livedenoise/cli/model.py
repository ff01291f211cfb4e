"""Commands that create, describe and export models."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from livedenoise.app.models import build_tensorrt, export_to_onnx
from livedenoise.cli.common import console, fail
from livedenoise.errors import LivedenoiseError
from livedenoise.inference.tensorrt_engine import PRECISIONS
from livedenoise.model import (
    PRESETS,
    ModelCard,
    Normalization,
    build_model,
    check_model_output,
    find_model,
    load_model,
    model_paths,
    preset,
    save_model,
)
from livedenoise.paths import output_refusal


class ExportFormat(str, Enum):
    """What ``export`` writes: an ONNX graph, a TensorRT engine, or a bioimage.io package."""

    onnx = "onnx"
    tensorrt = "tensorrt"
    bioimageio = "bioimageio"


def parse_size(text: str) -> tuple[int, int]:
    """``512`` or ``512x640`` (height x width) as (height, width)."""
    try:
        h, _, w = text.lower().partition("x")
        size = (int(h), int(w or h))
    except ValueError:
        raise typer.BadParameter(f"{text!r}: give HEIGHTxWIDTH, e.g. 512x512") from None
    if min(size) < 1:
        raise typer.BadParameter(f"{text!r}: sizes are positive")
    return size


def new(
    out: Annotated[Path, typer.Argument(help="Where to write NAME.safetensors and NAME.json.")],
    preset_name: Annotated[
        str, typer.Option("--preset", help=f"Network size: {', '.join(PRESETS)}.")
    ] = "small",
    channels: Annotated[int, typer.Option(help="Image channels the model takes.")] = 1,
    offset: Annotated[
        float, typer.Option(help="Intensity offset subtracted before the model.")
    ] = 0.0,
    scale: Annotated[float, typer.Option(help="Intensity divisor after the offset.")] = 255.0,
    seed: Annotated[int, typer.Option(help="Seed of the initial weights.")] = 0,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", metavar="", help="Replace a model already at OUT.")
    ] = False,
) -> None:
    """Create an untrained model (for benchmarks, tests and training from scratch)."""
    try:
        cfg = preset(preset_name, channels=channels)
        norm = Normalization(offset=offset, scale=scale)
        check_model_output(out, overwrite=overwrite)
    except LivedenoiseError as err:
        raise fail(err, {"out": "OUT"}) from None
    except ValueError as err:  # the normalisation's own checks (pydantic)
        raise fail(str(err)) from None
    card = ModelCard(name=out.stem, config=cfg, normalization=norm, notes="untrained")
    card = save_model(build_model(cfg, seed=seed), card, out)
    console.print(f"wrote {model_paths(out)[0]} ({card.weights_sha256[:12]})")


def info(
    model: Annotated[Path, typer.Argument(help="A model: NAME, NAME.safetensors or NAME.json.")],
) -> None:
    """Show a model's card: architecture, normalisation, training data, lineage and hash."""
    try:
        net, card = load_model(model)
    except LivedenoiseError as err:
        raise fail(err) from None
    table = Table(title=f"model {card.name}", show_header=False)
    table.add_row("parameters", f"{sum(p.numel() for p in net.parameters()):,}")
    for key, value in card.model_dump(exclude={"format"}).items():
        table.add_row(key, str(value))
    console.print(table)


def export(
    model: Annotated[Path, typer.Argument(help="A model: NAME, NAME.safetensors or NAME.json.")],
    export_format: Annotated[
        ExportFormat, typer.Option("--format", "--backend", help="What to export to.")
    ] = ExportFormat.onnx,
    out: Annotated[
        Path | None,
        typer.Option(help="ONNX file (default: beside the model) or bioimage.io package NAME.zip."),
    ] = None,
    frame_size: Annotated[
        str, typer.Option(help="TensorRT: the acquisition's frame size, HEIGHTxWIDTH.")
    ] = "512x512",
    window: Annotated[int, typer.Option(min=1, help="TensorRT: frames per window, T.")] = 8,
    precision: Annotated[str, typer.Option(help=f"TensorRT: {', '.join(PRECISIONS)}.")] = "fp16",
    license: Annotated[
        str, typer.Option(help="bioimageio: the weights' licence, an SPDX id.")
    ] = "BSD-3-Clause",
    author: Annotated[
        list[str] | None,
        typer.Option(metavar="NAME", help="bioimageio: who made the model (repeat for each)."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", metavar="", help="Replace a file already at --out.")
    ] = False,
) -> None:
    """Export a model for an inference backend.

    onnx: one graph with dynamic batch, frames, height and width; the model's normalisation and tile size are in the file's metadata.

    tensorrt: an engine for this GPU, built for the acquisition's frame size and window into the engine cache (reused until something changes).

    bioimageio: a bioimage.io model package (--out NAME.zip) for deepImageJ, bioimageio.core and the other zoo tools, tested before it is reported (needs the optional extra "bioimageio").
    """
    example = "model.zip" if export_format is ExportFormat.bioimageio else "model.onnx"
    if out is not None and (refused := _out_refusal(model, out, overwrite, example)):
        raise fail(refused)
    if export_format is ExportFormat.bioimageio:
        _export_package(model, out, license, author or [])
        return
    if export_format is ExportFormat.tensorrt:
        if out is not None:
            raise fail(
                "a TensorRT engine is tied to this GPU and TensorRT version, so it lives in the "
                "engine cache; --out applies to onnx."
            )
        size = parse_size(frame_size)
        try:
            with console.status(f"building a TensorRT {precision} engine for {model}"):
                description, path = build_tensorrt(model, size, window, precision)
        except LivedenoiseError as err:
            raise fail(err) from None
        console.print(f"engine: {description}\nat {path}")
        return
    try:
        with console.status(f"exporting {model} to ONNX"):
            target = export_to_onnx(model, out)
    except LivedenoiseError as err:
        raise fail(err) from None
    console.print(f"wrote {target}")


def _out_refusal(model: Path, out: Path, overwrite: bool, example: str) -> str | None:
    """Why ``--out`` must not be written (a folder, the model, an existing file without
    ``--overwrite``, an unwritable place), or None; ``example`` names a file of the format."""
    if out.is_dir():
        return f"--out {out} is a folder: give a file, e.g. --out {out / example}."
    inputs = [("model", path) for path in model_paths(find_model(model))]
    if refused := output_refusal(out, inputs, "--out"):
        return refused
    if out.exists() and not overwrite:
        return f"{out} exists: pass --overwrite to replace it, or choose another --out."
    return None


def _export_package(model: Path, out: Path | None, license: str, authors: list[str]) -> None:
    if out is None or out.suffix != ".zip":
        raise fail("give the package's file with --out NAME.zip.")
    try:
        from livedenoise.app.bioimageio import export_package

        with console.status(f"packaging {model} for bioimage.io and testing the package"):
            result = export_package(model, out, license=license, authors=authors)
    except ImportError as err:
        raise fail(str(err)) from None
    except LivedenoiseError as err:
        raise fail(err) from None
    console.print(f"wrote {result.path} ({', '.join(result.weights)} weights)")
    if result.test_status != "passed":
        raise fail(f"the package's own test failed:\n{result.test_details}")
    console.print("bioimageio.core: the package's test input gives its test output")


def import_package(
    package: Annotated[Path, typer.Argument(help="A bioimage.io package livedenoise exported.")],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where to write NAME.safetensors and NAME.json (default: the zip's name)."
        ),
    ] = None,
) -> None:
    """Restore a livedenoise model from a bioimage.io package, checking every file's hash."""
    target = out or Path(package.name.removesuffix(".zip"))
    try:
        from livedenoise.app.bioimageio import import_package as restore

        card = restore(package, target)
    except ImportError as err:
        raise fail(str(err)) from None
    except LivedenoiseError as err:
        raise fail(err) from None
    console.print(f"wrote {model_paths(target)[0]} (model {card.lineage})")
