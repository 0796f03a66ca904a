"""``earthsig models``: list, show and register models of the repository."""

from __future__ import annotations

import json
from pathlib import Path

import click

from earthsignature.settings import load_settings


def _repo():  # type: ignore[no-untyped-def]
    from earthsignature.models.repository import repository_for

    return repository_for(load_settings().model_repository)


@click.group("models")
def command() -> None:
    """The Triton-layout model repository (EARTHSIG_MODEL_REPOSITORY or the shipped one)."""


@command.command("list")
def list_models() -> None:
    """Every model and its versions."""
    repo = _repo()
    for name in repo.names():
        click.echo(f"{name}\t{','.join(str(v) for v in repo.versions(name))}")


@command.command("show")
@click.argument("name")
@click.argument("version", type=int)
def show(name: str, version: int) -> None:
    """The metadata of one version, as JSON."""
    click.echo(json.dumps(_repo().spec(name, version).model_dump(), indent=2))


@command.command("register")
@click.argument("onnx_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("metadata", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def register(onnx_file: Path, metadata: Path) -> None:
    """Add ONNX_FILE with METADATA (ModelSpec JSON without version) as the next version."""
    spec = _repo().register(onnx_file, json.loads(metadata.read_text()))
    click.echo(f"registered {spec.name} version {spec.version}")


@command.command("import-csmask")
@click.option(
    "--level",
    type=click.Choice(["l2a", "l1c"]),
    default="l2a",
    show_default=True,
    help="Product level the model was trained on (the pipeline reads L2A).",
)
def import_csmask(level: str) -> None:
    """Add ukis-csmask's 6-band cloud/shadow U-Net (extra csmask) as the next version of
    csmask-LEVEL, the learned mask of EARTHSIG_CLOUD_MASK_METHOD=learned|both."""
    from earthsignature.models.csmask import import_csmask as build

    spec = build(_repo(), level)
    click.echo(f"registered {spec.name} version {spec.version} (sha256 {spec.source['sha256']})")


@command.command("import-dynamicworld")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", default="dynamicworld-clc", show_default=True)
@click.option("--version", type=int, default=None, help="Default: the next free version.")
@click.option(
    "--golden",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write TensorFlow's outputs on the real sample chips here (.npz) for CI.",
)
def import_dynamicworld(src: Path, name: str, version: int | None, golden: Path | None) -> None:
    """Convert the Dynamic World SavedModel SRC (the folder holding saved_model.pb) to ONNX,
    check it against TensorFlow on real BigEarthNet chips, and register it (extra "import")."""
    try:
        from earthsignature.models.dwimport import import_dynamicworld as run_import

        spec = run_import(src, _repo(), name=name, version=version, golden_path=golden)
    except ImportError as exc:
        raise click.ClickException(
            f"{exc.name or exc}: the import needs pip install 'earthsignature[import,eval]'"
        ) from exc
    click.echo(f"registered {spec.name} version {spec.version}")
