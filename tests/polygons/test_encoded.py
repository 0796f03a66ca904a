"""The pre-encoded polygons file on its own: cached headers, batched clipping, box triage."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyogrio.raw
import pytest
import shapely
from shapely.geometry import Polygon, box

from earthsignature.polygons import encoded
from earthsignature.polygons.area import Area
from earthsignature.polygons.encoded import HeaderCache, finish, locate, read_encoded
from earthsignature.polygons.threads import GeosThreads
from earthsignature.storage import LocalStore

#: A triangle (lon/lat) crossing a 6 x 6 grid of small squares.
AOI = Polygon([(0.0, 0.0), (0.06, 0.005), (0.01, 0.055)])


def _write(folder: Path, name: str, shift: float = 0.0) -> None:
    """A FlatGeobuf of 36 squares (codes cycling) and its pre-encoded file ``name``.gbx."""
    squares = [
        box(x * 0.01 + shift, y * 0.01, x * 0.01 + 0.009 + shift, y * 0.01 + 0.009)
        for y in range(6)
        for x in range(6)
    ]
    fgb = folder / f"{name}.fgb"
    pyogrio.raw.write(
        fgb,
        shapely.to_wkb(np.array(squares, dtype=object)),
        [np.array([311, 211, 512] * 12, dtype=np.int32), np.arange(36, dtype=np.float64)],
        fields=["code", "area_m2"],
        geometry_type="Polygon",
        crs="EPSG:4326",
        driver="FlatGeobuf",
        layer_options={"SPATIAL_INDEX": "YES"},
    )
    assert encoded.write_encoded(fgb, folder / f"{name}.gbx")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> LocalStore:
    folder = tmp_path_factory.mktemp("gbx")
    _write(folder, "a")
    _write(folder, "b", shift=0.002)
    return LocalStore(str(folder))


def test_header_cache_counts_hits_and_tells_versions_apart(
    store: LocalStore, tmp_path: Path
) -> None:
    cache = HeaderCache()
    plain = read_encoded(store, "a.gbx", AOI)
    for _ in range(3):
        assert read_encoded(store, "a.gbx", AOI, headers=cache, token=1) == plain
    assert cache.stats()["hits"] == 2 and cache.stats()["misses"] == 1
    # the same key re-published (a new token) is read again, not served from the old header
    local = LocalStore(str(tmp_path))
    local.put_bytes("p.gbx", store.get_bytes("a.gbx"))
    read_encoded(local, "p.gbx", AOI, headers=cache, token="v1")
    local.put_bytes("p.gbx", store.get_bytes("b.gbx"))
    again = read_encoded(local, "p.gbx", AOI, headers=cache, token="v2")
    assert again == read_encoded(store, "b.gbx", AOI)
    assert cache.stats()["misses"] == 3


def test_header_cache_stays_within_its_bytes(store: LocalStore) -> None:
    one = HeaderCache()
    read_encoded(store, "a.gbx", AOI, headers=one)
    size = one.stats()["bytes"]
    cache = HeaderCache(max_bytes=size)  # room for one header
    read_encoded(store, "a.gbx", AOI, headers=cache)
    read_encoded(store, "b.gbx", AOI, headers=cache)
    read_encoded(store, "a.gbx", AOI, headers=cache)  # dropped for b's: read again
    assert cache.stats() == {"hits": 0, "misses": 3, "entries": 1, "bytes": size}


def test_products_clipped_together_answer_as_each_alone(store: LocalStore) -> None:
    for categories in (frozenset(), frozenset({311})):
        alone = [read_encoded(store, k, AOI, categories) for k in ("a.gbx", "b.gbx", "a.gbx")]
        located = [locate(store, k, AOI, categories) for k in ("a.gbx", "b.gbx", "a.gbx")]
        assert finish(located) == alone
        assert all(answer.bodies for answer in alone)
    assert finish([]) == []


def _request(store: LocalStore, geos: GeosThreads) -> list[encoded.Encoded]:
    """One V2-like request: its own area, three products located then finished."""
    area = Area(shapely.from_wkb(AOI.wkb))
    with geos.request():
        return finish([locate(store, k, area, threads=geos) for k in ("a.gbx", "b.gbx", "a.gbx")])


def test_a_lone_request_hands_its_intersections_off_and_answers_the_same(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = [read_encoded(store, k, AOI) for k in ("a.gbx", "b.gbx", "a.gbx")]
    geos = GeosThreads(workers=1)
    monkeypatch.setattr(geos, "_core_free", lambda: True)
    try:
        assert _request(store, geos) == expected
        assert geos.handed_off == 3 and geos.in_place == 0
        # two requests at once: neither hands work off
        with geos.request():
            assert _request(store, geos) == expected
        assert geos.handed_off == 3 and geos.in_place == 3
        # a busy machine (load average): none either
        monkeypatch.setattr(geos, "_core_free", lambda: False)
        assert _request(store, geos) == expected
        assert geos.handed_off == 3 and geos.in_place == 6
    finally:
        geos.close()


def test_concurrent_requests_handing_work_off_all_answer_the_same(store: LocalStore) -> None:
    """Many requests' intersections in one pool at once (the case that crashed GEOS when a
    prepared area was shared between threads): each task has its own copy of the area."""
    expected = [read_encoded(store, k, AOI) for k in ("a.gbx", "b.gbx", "a.gbx")]
    geos = GeosThreads(workers=3, lone_only=False)
    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: _request(store, geos), range(60)))
    finally:
        geos.close()
    assert all(answer == expected for answer in answers)
    assert geos.handed_off == 180


@pytest.mark.parametrize(
    "aoi",
    [
        AOI,
        # long and thin, and in two parts with a hole: cells far from square, several rings
        shapely.MultiPolygon([box(0.0, 0.02, 0.064, 0.024), box(0.03, 0.0, 0.05, 0.06)]),
        box(0.0, 0.0, 0.06, 0.06).difference(box(0.02, 0.02, 0.03, 0.04)),
    ],
)
def test_box_triage_agrees_with_geos(aoi: shapely.Geometry) -> None:
    rng = np.random.default_rng(3)
    lo = rng.uniform(-0.01, 0.065, (2000, 2))
    boxes = np.column_stack([lo, lo + rng.uniform(0.00005, 0.01, (2000, 2))])
    inside, edge = Area(aoi).classify(boxes)
    shapes = shapely.box(*boxes.T)
    geos = shapely.contains_properly(aoi, shapes)
    assert (inside <= geos).all()  # never called inside when GEOS says otherwise
    assert (geos <= inside | edge).all()  # a box the area contains is kept
    crossing = shapely.intersects(aoi, shapes) & ~geos
    assert (crossing <= edge).all()  # every box crossing the edge is clipped
    outside = ~inside & ~edge
    assert not shapely.intersects(aoi, shapes[outside]).any()
    assert inside.sum() > 10 and edge.sum() > 10 and outside.sum() > 10


def test_writing_in_chunks_gives_the_same_bytes(
    store: LocalStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer streams the FlatGeobuf chunk by chunk; chunk edges leave no trace."""
    fgb = Path(store.root) / "a.fgb"
    monkeypatch.setattr(encoded, "BLOCK", 4)  # 9 blocks of the 36 squares
    whole, chunked = tmp_path / "whole.gbx", tmp_path / "chunked.gbx"
    assert encoded.write_encoded(fgb, whole)  # one chunk
    monkeypatch.setattr(encoded, "CHUNK", 8)  # five chunks, the last one short
    assert encoded.write_encoded(fgb, chunked)
    assert chunked.read_bytes() == whole.read_bytes()
    assert read_encoded(LocalStore(str(tmp_path)), "chunked.gbx", AOI).bodies
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunked.gbx", "whole.gbx"]
