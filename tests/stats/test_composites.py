"""``earthsig stats --composite``: class areas of a tile-period composite, and its confidence
as the --min-confidence filter."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from earthsignature.cli import cli
from earthsignature.composites import stage
from earthsignature.runtime import Runtime
from earthsignature.storage import LocalStore, catalog
from tests.stats.conftest import DAY1, MODEL, VERSION, Scene, expected_areas


def _composited(scene: Scene, tmp_path: Path) -> Path:
    """A copy of the scene's store with date 1's first tile folded into its composites."""
    root = tmp_path / "store"
    shutil.copytree(scene.store.root, root)
    rt = Runtime(settings=scene.settings, store=LocalStore(root))
    (entry,) = [
        e
        for e in catalog.iter_entries(rt.store, MODEL, VERSION, DAY1, DAY1)
        if e.properties[catalog.PROP_TILE] == "31TCJ"
    ]
    stage.update_composites(rt, entry, vectors=False)
    return root


def _stats(root: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        cli, ["stats", *args], env={"EARTHSIG_STORE": str(root), "EARTHSIG_MODEL_NAME": MODEL}
    )
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


def test_composite_areas_and_confidence(scene: Scene, whole_area, tmp_path: Path) -> None:
    root = _composited(scene, tmp_path)
    code, out, err = _stats(root, "--wkt", whole_area.wkt, "--composite", "2024-06", "--json")
    assert code == 0, err
    (composite,) = json.loads(out)["composites"]
    assert composite["product_ids"] == ["COMPOSITE_31TCJ_2024-06"]
    assert "dates" not in json.loads(out)
    truth, _ = expected_areas(scene.truth1, scene.cloud1)  # one clear date: its labels
    assert {c["code"]: c["area_m2"] for c in composite["classes"]} == truth
    # one observation gives 50 % (a dissent is imagined): all of it is below 60 %
    code, out, _ = _stats(
        root, "--wkt", whole_area.wkt, "--composite", "2024-06", "--min-confidence", "60",
        "--json",
    )  # fmt: skip
    (low,) = json.loads(out)["composites"]
    assert code == 0 and low["classes"] == []
    assert low["low_confidence_m2"] == sum(truth.values())
    table = _stats(root, "--wkt", whole_area.wkt, "--composite", "R12-2024-06")[1]
    assert "composite R12-2024-06" in table and " ha " in table


def test_composite_errors_are_one_line(scene: Scene, whole_area) -> None:
    code, _, err = _stats(scene.store.root, "--wkt", whole_area.wkt, "--composite", "2024-13")
    assert code == 2 and "--composite" in err
    code, _, err = _stats(scene.store.root, "--wkt", whole_area.wkt, "--composite", "2030-01")
    assert code == 1 and "no composite of clc-stats v1 for 2030-01" in err
