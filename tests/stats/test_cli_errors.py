"""``earthsig stats`` says so when nothing matches, refuses bad windows, and names a damaged
object instead of a traceback while still answering from the other products."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from earthsignature import stats
from earthsignature.cli import cli
from earthsignature.storage import LocalStore
from earthsignature.storage.catalog import iter_entries
from earthsignature.storage.errors import CorruptObject
from tests.stats.conftest import DAY1, DAY2, MODEL, VERSION, Scene


def _run(store_root: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        cli,
        ["stats", *args],
        env={"EARTHSIG_STORE": str(store_root), "EARTHSIG_MODEL_NAME": MODEL},
    )
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2030-01-01", "--to", "2030-12-31"], "no committed product"),
        (["--version", "9"], "no committed products of model clc-stats version 9"),
        (["--model", "nosuch"], "no committed products of model nosuch"),
        (["--change", "2030-01-01", "2030-02-01"], "no committed product"),
    ],
)
def test_nothing_matching_is_said_and_exits_1(
    scene: Scene, whole_area, args: list[str], message: str
) -> None:
    code, _out, err = _run(scene.store.root, "--wkt", whole_area.wkt, *args)
    assert code == 1
    assert message in err


def test_from_after_to_is_refused(scene: Scene, whole_area) -> None:
    code, _out, err = _run(
        scene.store.root, "--wkt", whole_area.wkt, "--from", "2024-08-01", "--to", "2024-06-01"
    )
    assert code == 2
    assert "before --from" in err


def test_missing_store_is_refused_not_created(tmp_path: Path, whole_area) -> None:
    missing = tmp_path / "nothing-here"
    code, _out, err = _run(missing, "--wkt", whole_area.wkt)
    assert code == 2
    assert "does not exist" in err
    assert not missing.exists()


@pytest.fixture
def damaged(scene: Scene, tmp_path: Path) -> tuple[LocalStore, str]:
    """A copy of the scene's store whose second-tile segmentation COG is truncated."""
    root = tmp_path / "store"
    shutil.copytree(scene.store.root, root)
    store = LocalStore(root, create=False)
    (entry,) = [e for e in iter_entries(store, MODEL, VERSION) if "31TDJ" in e.product_id]
    key = entry.assets["segmentation"]
    path = root / key
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    return store, key


def test_damaged_cog_is_named_and_the_rest_still_counted(
    scene: Scene, damaged: tuple[LocalStore, str], whole_area
) -> None:
    store, key = damaged
    both_tiles = whole_area.buffer(0.2)
    code, out, err = _run(
        store.root, "--wkt", both_tiles.wkt, "--from", str(DAY1), "--to", str(DAY2), "--json"
    )
    assert code == 1
    assert key in err and len(err.strip().splitlines()) == 1
    days = json.loads(out)["dates"]
    assert [d["date"] for d in days] == [DAY1.isoformat(), DAY2.isoformat()]
    assert days[0]["unreadable"][0]["key"] == key
    assert days[0]["classes"]  # the first tile's product is still counted


def test_damaged_cog_in_a_change_is_a_corrupt_object_error(
    damaged: tuple[LocalStore, str], whole_area
) -> None:
    store, key = damaged
    # an area over both tiles of date 1
    area = stats.parse_aoi(whole_area.buffer(0.2).wkt)
    with pytest.raises(CorruptObject, match="cannot be read") as info:
        stats.change(store, area, DAY1, DAY2, model=MODEL, version=VERSION)
    assert info.value.key == key
