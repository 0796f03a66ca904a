"""`earthsig evaluate` / `earthsig models` on a generator scene, and split's clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from earthsignature.cli import cli
from earthsignature.functions import split
from earthsignature.functions.errors import BadInput
from earthsignature.generator import generate_product
from earthsignature.storage import LocalStore


def test_evaluate_reports_per_class_scores_and_writes_a_panel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EARTHSIG_MODEL_NAME", "clc-baseline")
    product = generate_product(tmp_path / "gen", size=192, seed=3)
    panel, out = tmp_path / "panel.png", tmp_path / "result.json"
    result = CliRunner().invoke(
        cli,
        ["evaluate", str(product.directory), str(product.truth), "--panel", str(panel),
         "--json", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.startswith("clc-baseline v1: pixel accuracy")
    report = json.loads(out.read_text())
    assert (report["model"], report["version"]) == ("clc-baseline", 1)
    assert report["offset"] == pytest.approx(-0.1)  # baseline 05.10, from the scene's STAC item
    n = len(report["codes"])
    assert len(report["confusion"]) == n and all(len(row) == n for row in report["confusion"])
    for scores in report["classes"].values():
        assert 0.0 <= scores["iou"] <= min(scores["precision"], scores["recall"]) + 1e-9
    assert 0.3 < report["accuracy"] <= 1.0
    assert panel.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_refuses_a_scene_without_a_stated_offset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EARTHSIG_MODEL_NAME", "clc-baseline")
    product = generate_product(tmp_path / "gen", size=96, seed=3)
    bands = tmp_path / "bands"
    bands.mkdir()
    for tif in product.directory.glob("B*.tif"):
        shutil.copyfile(tif, bands / tif.name)
    result = CliRunner().invoke(cli, ["evaluate", str(bands), str(product.truth)])
    assert result.exit_code == 2
    assert result.output.startswith("error: no reflectance offset") and "Traceback" not in (
        result.output
    )
    explicit = CliRunner().invoke(
        cli, ["evaluate", str(bands), str(product.truth), "--offset", "-0.1"]
    )
    assert explicit.exit_code == 0, explicit.output


@pytest.mark.shared_data
def test_evaluate_bigearthnet_prints_clear_and_disturbed_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from earthsignature.models import bigearthnet

    try:
        bigearthnet.mock_data()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    monkeypatch.setenv("EARTHSIG_MODEL_NAME", "clc-baseline")
    out = tmp_path / "ben.json"
    result = CliRunner().invoke(cli, ["evaluate", "--bigearthnet", "--json", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("clc-baseline v1 BigEarthNet clear: 48 patches")
    assert lines[1].startswith("clc-baseline v1 BigEarthNet snow_cloud_shadow: 6 patches")
    report = json.loads(out.read_text())
    assert "CDLA-Permissive-1.0" in report["data"] and len(report["patches"]) == 54


def test_models_list_and_show() -> None:
    runner = CliRunner()
    listed = runner.invoke(cli, ["models", "list"])
    assert listed.exit_code == 0 and "clc-baseline\t1" in listed.output
    shown = runner.invoke(cli, ["models", "show", "clc-baseline", "1"])
    assert json.loads(shown.output)["bands"] == ["B02", "B03", "B04", "B08", "B11", "B12"]
    missing = runner.invoke(cli, ["models", "show", "clc-baseline", "99"])
    assert missing.exit_code == 2 and "not available" in missing.output


def test_split_names_missing_bands(model_repo, make_runtime, synthetic_product, tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = LocalStore(tmp_path / "store")
    msg = synthetic_product(store, h=60, w=60)
    msg = msg.model_copy(update={"bands": {k: v for k, v in msg.bands.items() if k != "B11"}})
    with pytest.raises(BadInput, match="bands missing") as err:
        split.handle(msg, make_runtime(store, model_repo))
    assert err.value.details["missing"] == ["B11"]
    assert list(store.list_keys(msg.work_prefix)) == []


def test_split_refuses_an_unreadable_band(
    model_repo, make_runtime, synthetic_product, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    store = LocalStore(tmp_path / "store")
    msg = synthetic_product(store, h=60, w=60)
    store.put_bytes(msg.bands["B04"], b"not a tiff")
    with pytest.raises(BadInput, match="band unreadable"):
        split.handle(msg, make_runtime(store, model_repo))
    assert list(store.list_keys(msg.work_prefix)) == []
