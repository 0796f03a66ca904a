"""Hypothesis fuzzing of every V1 and V2 method over real gRPC against one real server process.

The server is ``earthsig serve`` in a subprocess (its RSS is read from /proc) over a catalog on
the session's S3 server. Every answer must be OK or a documented client error with a message,
never UNKNOWN or INTERNAL; afterwards the server is still healthy and its memory bounded.
Examples are derandomized, so CI sees the same cases every run. Each server cap (area,
vertices, WKT length, list lengths, geobuf header, n_results) also has a plain case here, on
the session's in-process server, and parallel V1 clients must get the serial answer.
"""

from __future__ import annotations

import base64
import math
import os
import random
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import geobuf
import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from earthsignature import corine
from earthsignature.grpc_api.server import ApiServer
from earthsignature.proto.stubs import (
    geobuf_pb2,
    r2_v1_pb2,
    r2_v1_pb2_grpc,
    r2_v2_pb2,
    r2_v2_pb2_grpc,
    v1_pb2,
    v1_pb2_grpc,
    v2_pb2,
    v2_pb2_grpc,
)
from earthsignature.testing.seaweed import SeaweedS3
from tests.api.conftest import (
    TOKEN,
    ServeProcess,
    aoi_box,
    decode_tiff,
    open_channel,
    published_store,
    s3_env,
    sample_products,
)

#: Codes a client may legitimately get for a bad or too-large request.
CLIENT_ERRORS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.FAILED_PRECONDITION,
}
MAX_RESULTS = 2
V1_SERVICE = "/snapearth.api.v1.database.DatabaseProductService/"
V2_SERVICE = "/snapearth.api.v2.database.DatabaseProductService/"
R2_V1_SERVICE = "/snapearth.api.v1.DatabaseProductService/"
R2_V2_SERVICE = "/snapearth.api.v2.DatabaseProductService/"
#: (messages, stubs) of V2 in both revisions: same messages, two package names.
V2_REVISIONS = ((v2_pb2, v2_pb2_grpc), (r2_v2_pb2, r2_v2_pb2_grpc))
#: Server RSS may grow this much over the whole fuzz run (GDAL/grpc caches warming up).
RSS_GROWTH_LIMIT_MIB = 150
#: Requests the memory test sends itself, so it means something when run alone.
OWN_LOAD_CALLS = 200

#: Examples per fuzz test; benchmarks/api_fuzz.py runs many more.
EXAMPLES = int(os.environ.get("EARTHSIG_FUZZ_EXAMPLES", "150"))
# No shrinking: a case that hangs or kills the server makes every later case fail too, so a
# shrunk example would mislead; the first failing case is the one to read.
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
CALL_TIMEOUT = 20.0
CREATE_EXAMPLES = max(1, EXAMPLES * 3 // 8)
CASES: Counter[str] = Counter()
PARALLEL_CLIENTS = 16


# -- the server process ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(s3_server: SeaweedS3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    store = published_store(s3_server)
    env = {
        **s3_env(store),
        "EARTHSIG_API_TOKEN": TOKEN,
        "EARTHSIG_API_MAX_RESULTS": str(MAX_RESULTS),
        "EARTHSIG_API_DEFAULT_RESULTS": "1",
        "EARTHSIG_API_WORKERS": str(PARALLEL_CLIENTS),
        "EARTHSIG_MIN_MAPPING_UNIT_M2": "0",
        # one malloc arena per worker thread would make RSS depend on thread scheduling
        "MALLOC_ARENA_MAX": "2",
    }
    server = ServeProcess(env, tmp_path_factory.mktemp("fuzz") / "serve.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def fuzz_channel(served: ServeProcess) -> Iterator[grpc.Channel]:
    with open_channel(served.address) as chan:
        yield chan


@pytest.fixture(scope="module")
def baseline_rss(served: ServeProcess, fuzz_channel: grpc.Channel) -> float:
    """RSS after one of each kind of answer (so one-off imports and caches are counted)."""
    v1 = v1_pb2_grpc.DatabaseProductServiceStub(fuzz_channel)
    v2 = v2_pb2_grpc.DatabaseProductServiceStub(fuzz_channel)
    list(v1.ListSegmentation(v1_pb2.ListSegmentationRequest(wkt=NEAR.wkt, n_results=2)))
    list(v1.ListProductIds(v1_pb2.ListProductIdsRequest()))
    list(v2.ListSegmentation(v2_pb2.ListSegmentationRequest(wkt=NEAR.wkt)))
    return served.rss_mib()


def check(call: Callable[[], Any], label: str) -> None:
    """Run one call (draining streams): OK, or a client error that says what is wrong."""
    try:
        answer = call()
        if isinstance(answer, Iterator):
            for _ in answer:
                pass
        CASES[f"{label}: OK"] += 1
    except grpc.RpcError as exc:
        code, details = exc.code(), exc.details() or ""
        CASES[f"{label}: {code.name}"] += 1
        assert code in CLIENT_ERRORS, f"{label}: {code} {details!r}"
        assert details.strip(), f"{label}: {code} without a message"
        assert "Stream removed" not in details, f"{label}: the status message was lost: {details}"


# -- strategies -----------------------------------------------------------------------------

NEAR = aoi_box(500_300.0, 4_980_200.0, 500_900.0, 4_980_700.0)
NEAR_GEOJSON = NEAR.__geo_interface__
WORLD = "POLYGON ((-180 -90, 180 -90, 180 90, -180 90, -180 -90))"
FRANCE = "POLYGON ((-5 42, 8 42, 8 51, -5 51, -5 42))"

printable = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
lon = st.floats(-180, 180, allow_nan=False)
lat = st.floats(-90, 90, allow_nan=False)
any_float = st.floats(allow_nan=True, allow_infinity=True)


def _ring(points: list[tuple[float, float]]) -> str:
    return ", ".join(f"{x!r} {y!r}" for x, y in [*points, points[0]])


@st.composite
def boxes(draw: st.DrawFn) -> str:
    x0, x1 = sorted((draw(lon), draw(lon)))
    y0, y1 = sorted((draw(lat), draw(lat)))
    return f"POLYGON (({_ring([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])}))"


@st.composite
def circles(draw: st.DrawFn) -> str:
    """Regular polygons, up to well past the vertex cap."""
    n = draw(st.sampled_from([3, 8, 100, 1000, 100_001]))
    cx, cy, r = draw(st.floats(-170, 170)), draw(st.floats(-80, 80)), draw(st.floats(1e-6, 9))
    step = 2 * math.pi / n
    pts = [(cx + r * math.cos(i * step), cy + r * math.sin(i * step)) for i in range(n)]
    return f"POLYGON (({_ring(pts)}))"


@st.composite
def raw_polygons(draw: st.DrawFn) -> str:
    """Polygons of arbitrary numbers: NaN, inf, huge, projected, too few points."""
    pts = draw(st.lists(st.tuples(any_float, any_float), min_size=1, max_size=8))
    return f"POLYGON (({_ring(pts)}))"


wkts = st.one_of(
    boxes(),
    circles(),
    raw_polygons(),
    st.sampled_from(
        [
            WORLD,
            FRANCE,
            NEAR.wkt,
            "MULTIPOLYGON (((2 44, 4 44, 4 46, 2 44)), ((10 10, 11 10, 11 11, 10 10)))",
            "POLYGON ((170 0, -170 0, -170 10, 170 10, 170 0))",  # the long way round
            "POLYGON ((170 0, 190 0, 190 10, 170 10, 170 0))",  # past the antimeridian
            "POLYGON ((0 0, 1 1, 1 0, 0 1, 0 0))",  # bow tie
            "POLYGON ((0 0, 1 0, 0 0))",
            "POLYGON EMPTY",
            "GEOMETRYCOLLECTION EMPTY",
            "GEOMETRYCOLLECTION (POLYGON ((2 44, 4 44, 4 46, 2 44)))",
            "POINT (3 45)",
            "LINESTRING (3 45, 4 46)",
            "POLYGON ((nan nan, 1 0, 1 1, nan nan))",
            "POLYGON ((-inf 0, inf 0, inf 1, -inf 0))",
            "POLYGON Z ((2 44 1, 4 44 1, 4 46 1, 2 44 1))",
            "POLYGON ((500000 4980000, 501000 4980000, 501000 4981000, 500000 4980000))",
            "POLYGON ((2 44, 4 44",
            "x" * 7_000_000,
            "",
        ]
    ),
    printable,
)


@st.composite
def timestamps(draw: st.DrawFn) -> Timestamp | None:
    seconds = draw(
        st.one_of(
            st.integers(-62_135_596_800, 253_402_300_799),  # 0001-01-01 .. 9999-12-31
            st.integers(-(2**63), 2**63 - 1),
            st.sampled_from([1_577_836_800, 1_640_995_200]),  # 2020, 2022
        )
    )
    nanos = draw(st.one_of(st.just(0), st.integers(-(2**31), 2**31 - 1)))
    return draw(st.sampled_from([None, Timestamp(seconds=seconds, nanos=nanos)]))


GOOD_IDS = [p.product_id for p in sample_products()]
ids = st.one_of(
    st.sampled_from([*GOOD_IDS, "../../etc/passwd", "a" * 300, "a\nb", "\x00", "é", ",,,"]),
    printable,
)
id_lists = st.one_of(
    st.lists(ids, max_size=5),
    st.builds(lambda n: [GOOD_IDS[0]] * n, st.sampled_from([999, 1000, 1001, 50_000])),
    st.builds(lambda n: [",".join(GOOD_IDS * n)], st.sampled_from([10, 400])),
)
CODES = [str(c) for c in corine.CLASSES]
ODD_DIGITS = ["\u00b3\u00b9\u00b9", "\uff13\uff11\uff11"]  # superscript, full-width 311
categories = st.one_of(
    st.lists(
        st.one_of(
            st.sampled_from([*CODES, "0", "999", "-311", "311.0", " 311 ", *ODD_DIGITS]),
            st.integers().map(str),
            printable,
        ),
        max_size=5,
    ),
    st.builds(lambda n: ["311"] * n, st.sampled_from([1000, 1001, 20_000])),
)
n_results = st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1), st.sampled_from([0, 1, 2, 3]))
metadata_values = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=12)
call_metadata = st.one_of(
    st.just(()),
    st.tuples(st.tuples(st.just("x-earthsig-version"), metadata_values)),
    st.tuples(st.tuples(st.just("x-earthsig-model"), metadata_values)),
)


def _fields(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


# -- V1 -------------------------------------------------------------------------------------


@FUZZ
@given(
    wkt=st.one_of(st.none(), wkts),
    start=timestamps(),
    end=timestamps(),
    product_ids=id_lists,
    cats=categories,
    n=n_results,
    metadata=call_metadata,
)
def test_v1_list_segmentation(  # type: ignore[no-untyped-def]
    fuzz_channel, baseline_rss, wkt, start, end, product_ids, cats, n, metadata
) -> None:
    request = v1_pb2.ListSegmentationRequest(
        **_fields(wkt=wkt, start_date=start, end_date=end, n_results=n),
        product_ids=product_ids,
        categories=cats,
    )
    stub = v1_pb2_grpc.DatabaseProductServiceStub(fuzz_channel)
    check(
        lambda: stub.ListSegmentation(request, metadata=metadata, timeout=CALL_TIMEOUT), "v1 list"
    )


@FUZZ
@given(wkt=st.one_of(st.none(), wkts), start=timestamps(), end=timestamps(), cats=categories)
def test_v1_list_product_ids(fuzz_channel, baseline_rss, wkt, start, end, cats) -> None:  # type: ignore[no-untyped-def]
    request = v1_pb2.ListProductIdsRequest(
        **_fields(wkt=wkt, start_date=start, end_date=end), categories=cats
    )
    stub = v1_pb2_grpc.DatabaseProductServiceStub(fuzz_channel)
    check(lambda: stub.ListProductIds(request, timeout=CALL_TIMEOUT), "v1 ids")


cql_atoms = st.one_of(
    st.sampled_from(
        [
            "category = 311",
            "category IN (311, 312)",
            "cloud_cover < 10",
            "datetime > TIMESTAMP('2021-01-01T00:00:00Z')",
            f"product_id = '{GOOD_IDS[0]}'",
            "version = 1",
            "model = 'x'",
            "colour = 'green'",
            "category = 'abc'",
            "cloud_cover < 'x'",
            "datetime > TIMESTAMP('yesterday')",
            "category = = 311",
        ]
    ),
    wkts.map(lambda w: f"S_INTERSECTS(geometry, {w})"),
    printable,
)
cql_queries = st.one_of(
    cql_atoms,
    st.lists(cql_atoms, min_size=2, max_size=4).map(" AND ".join),
    st.lists(cql_atoms, min_size=2, max_size=3).map(" OR ".join),
    cql_atoms.map(lambda q: f"NOT ({q})"),
)


@FUZZ
@given(query=cql_queries, n=n_results)
def test_v1_search_segmentation(fuzz_channel, baseline_rss, query, n) -> None:  # type: ignore[no-untyped-def]
    request = v1_pb2.SearchSegmentationRequest(**_fields(query=query, n_results=n))
    stub = v1_pb2_grpc.DatabaseProductServiceStub(fuzz_channel)
    check(lambda: stub.SearchSegmentation(request, timeout=CALL_TIMEOUT), "v1 search")


# -- V2 -------------------------------------------------------------------------------------

property_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    any_float,
    printable,
    st.sampled_from(["2021-01-01", "2021-06-30T00:00:00Z", "0001-01-01", "9999-12-31T23:59:59"]),
    st.lists(st.one_of(printable, st.integers(-1000, 1000)), max_size=4),
    st.sampled_from(GOOD_IDS),
    st.sampled_from(CODES),
    st.dictionaries(printable, st.integers(), max_size=2),
)
query_properties = st.dictionaries(
    st.one_of(
        st.sampled_from(
            ["start_date", "end_date", "product_ids", "categories", "n_results", "model", "version"]
        ),
        printable,
    ),
    st.one_of(
        property_values,
        id_lists,
        categories,
        st.integers(-(2**31), 2**31).map(float),
    ),
    max_size=5,
)


def _geojson(wkt: str) -> dict[str, Any] | None:
    import shapely

    try:
        geometry = shapely.from_wkt(wkt)
    except Exception:
        return None
    return geometry.__geo_interface__ if geometry is not None else None


geojson_geometries = st.one_of(
    wkts.filter(lambda w: len(w) < 1_000_000).map(_geojson),
    st.just(NEAR_GEOJSON),
    st.just({"type": "GeometryCollection", "geometries": []}),
)


def encode_query(geometry: dict[str, Any] | None, properties: dict[str, Any]) -> geobuf_pb2.Data:
    """A query Feature as geobuf; what the encoder refuses is sent as raw protobuf instead."""
    feature = {
        "type": "Feature",
        "geometry": geometry or {"type": "GeometryCollection", "geometries": []},
        "properties": properties,
    }
    try:
        data = geobuf_pb2.Data.FromString(geobuf.encode(feature))
    except Exception:  # NaN/inf coordinates, values geobuf cannot hold
        data = geobuf_pb2.Data(
            feature=geobuf_pb2.Data.Feature(geometry=geobuf_pb2.Data.Geometry(type=4))
        )
    data.feature.geometry.type = data.feature.geometry.type  # proto2 clients send POINT's 0
    return data


@st.composite
def raw_geobuf(draw: st.DrawFn) -> geobuf_pb2.Data:
    """Geobuf messages no encoder would write: odd lengths, precision, dimensions, values."""
    geometry = geobuf_pb2.Data.Geometry(
        type=draw(st.integers(0, 6)),
        lengths=draw(st.lists(st.integers(0, 2**32 - 1), max_size=4)),
        coords=draw(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=12)),
    )
    if draw(st.booleans()):
        geometry.geometries.append(geobuf_pb2.Data.Geometry(type=draw(st.integers(0, 6))))
    feature = geobuf_pb2.Data.Feature(
        geometry=geometry,
        properties=draw(st.lists(st.integers(0, 2**32 - 1), max_size=4)),
        values=[
            geobuf_pb2.Data.Value(double_value=v) for v in draw(st.lists(any_float, max_size=2))
        ],
    )
    data = geobuf_pb2.Data(
        keys=draw(st.lists(printable, max_size=3)),
        dimensions=draw(st.integers(0, 2**32 - 1)),
        precision=draw(st.integers(0, 2**32 - 1)),
    )
    kind = draw(st.sampled_from(["feature", "geometry", "collection"]))
    if kind == "feature":
        data.feature.CopyFrom(feature)
    elif kind == "geometry":
        data.geometry.CopyFrom(geometry)
    else:
        data.feature_collection.features.append(feature)
    return data


int_categories = st.one_of(
    st.lists(
        st.one_of(
            st.sampled_from([*corine.CLASSES, 0, 999, -311]), st.integers(-(2**31), 2**31 - 1)
        ),
        max_size=5,
    ),
    st.builds(lambda n: [311] * n, st.sampled_from([1000, 1001, 20_000])),
)


@FUZZ
@given(
    wkt=st.one_of(st.none(), wkts),
    start=timestamps(),
    end=timestamps(),
    product_ids=id_lists,
    cats=int_categories,
    n=n_results,
    metadata=call_metadata,
    method=st.sampled_from(["ListSegmentation", "ListProductIds"]),
    revision=st.sampled_from(V2_REVISIONS),
)
def test_v2_requests(  # type: ignore[no-untyped-def]
    fuzz_channel, baseline_rss, wkt, start, end, product_ids, cats, n, metadata, method, revision
) -> None:
    messages, stubs = revision
    values = _fields(wkt=wkt, start_date=start, end_date=end)
    if method == "ListSegmentation":
        request: Any = messages.ListSegmentationRequest(
            **values, **_fields(n_results=n), product_ids=product_ids, categories=cats
        )
    else:
        request = messages.ListProductIdsRequest(**values, categories=cats)
    stub = stubs.DatabaseProductServiceStub(fuzz_channel)
    check(
        lambda: getattr(stub, method)(request, metadata=metadata, timeout=CALL_TIMEOUT),
        f"v2 {method}",
    )


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


VALID_QUERY_BYTES = NEAR.wkt.encode()  # field 1 of every List* request: the wkt
payloads = st.one_of(
    st.binary(max_size=200),
    st.binary(max_size=200).map(lambda b: b"\x0a" + _varint(len(b)) + b),
    st.integers(0, len(VALID_QUERY_BYTES) - 1).map(
        lambda cut: b"\x0a" + _varint(cut) + VALID_QUERY_BYTES[:cut]
    ),
    st.integers(1, len(VALID_QUERY_BYTES) - 1).map(
        lambda cut: b"\x0a" + _varint(len(VALID_QUERY_BYTES)) + VALID_QUERY_BYTES[:cut]
    ),
)
RAW_METHODS = [
    V2_SERVICE + "ListSegmentation",
    V2_SERVICE + "ListProductIds",
    V1_SERVICE + "ListSegmentation",
    V1_SERVICE + "ListProductIds",
    V1_SERVICE + "SearchSegmentation",
    R2_V1_SERVICE + "ListSegmentation",
    R2_V1_SERVICE + "ListProductIds",
    R2_V2_SERVICE + "ListSegmentation",
    R2_V2_SERVICE + "ListProductIds",
]


@FUZZ
@given(payload=payloads, method=st.sampled_from(RAW_METHODS))
def test_raw_bytes(fuzz_channel, baseline_rss, payload, method) -> None:  # type: ignore[no-untyped-def]
    call = fuzz_channel.unary_stream(method)  # bytes in, bytes out
    check(lambda: call(payload, timeout=CALL_TIMEOUT), "raw bytes")


# -- writes ---------------------------------------------------------------------------------

AUTH = (("authorization", f"Bearer {TOKEN}"),)
base64_texts = st.one_of(
    printable, st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode())
)


@settings(FUZZ, max_examples=CREATE_EXAMPLES)
@given(
    data=st.one_of(
        st.builds(encode_query, geojson_geometries, query_properties),
        raw_geobuf(),
        st.builds(
            encode_query,
            st.none(),
            st.fixed_dictionaries(
                {"product_id": ids, "datetime": printable},
                optional={
                    "tile": printable,
                    "version": property_values,
                    "segmentation": st.one_of(base64_texts, property_values),
                    "cloud_mask": st.one_of(base64_texts, property_values),
                },
            ),
        ),
    ),
    segmentation=base64_texts,
    cloud=base64_texts,
    metadata=st.sampled_from([(), AUTH, (("authorization", "Bearer nope"),)]),
    version=st.sampled_from(["v1", "v2", "r2v1", "r2v2"]),
)
def test_create_product(  # type: ignore[no-untyped-def]
    fuzz_channel, baseline_rss, data, segmentation, cloud, metadata, version
) -> None:
    if version == "v1":
        stub: Any = v1_pb2_grpc.DatabaseProductServiceStub(fuzz_channel)
        request: Any = v1_pb2.CreateProductRequest(
            data=data, segmentation=segmentation, cloud_mask=cloud
        )
    elif version == "r2v1":  # R2 rasters are bytes: send the text's bytes as they are
        stub = r2_v1_pb2_grpc.DatabaseProductServiceStub(fuzz_channel)
        request = r2_v1_pb2.CreateProductRequest(
            data=data, segmentation=segmentation.encode(), cloud_mask=cloud.encode()
        )
    else:
        messages, stubs = V2_REVISIONS[version == "r2v2"]
        stub = stubs.DatabaseProductServiceStub(fuzz_channel)
        request = messages.CreateProductRequest(product=data)
    check(lambda: stub.CreateProduct(request, metadata=metadata, timeout=CALL_TIMEOUT), "create")


# -- caps: each a plain case on the session's in-process server ------------------------------


def polygon_wkt(n: int) -> str:
    """A valid n-vertex polygon around the test products."""
    step = 2 * math.pi / n
    pts = [(3 + 0.5 * math.cos(i * step), 45 + 0.5 * math.sin(i * step)) for i in range(n)]
    return f"POLYGON (({_ring(pts)}))"


HUGE_GEOBUF = geobuf_pb2.Data(
    dimensions=2,
    precision=6,
    feature=geobuf_pb2.Data.Feature(
        geometry=geobuf_pb2.Data.Geometry(type=4, lengths=[150_001], coords=[1] * 300_002)
    ),
)
CAPS: dict[str, tuple[Callable[[Any, Any], object], str]] = {
    "v1 whole world": (
        lambda v1, v2: list(v1.ListSegmentation(v1_pb2.ListSegmentationRequest(wkt=WORLD))),
        "the server's limit is 50,000,000 km²",
    ),
    "v1 ids whole world": (
        lambda v1, v2: list(v1.ListProductIds(v1_pb2.ListProductIdsRequest(wkt=WORLD))),
        "the server's limit is 50,000,000 km²",
    ),
    "v1 search whole world": (
        lambda v1, v2: list(
            v1.SearchSegmentation(
                v1_pb2.SearchSegmentationRequest(query=f"S_INTERSECTS(geometry, {WORLD})")
            )
        ),
        "the server's limit is 50,000,000 km²",
    ),
    "v2 whole world": (
        lambda v1, v2: list(v2.ListSegmentation(v2_pb2.ListSegmentationRequest(wkt=WORLD))),
        "the server's limit is 50,000,000 km²",
    ),
    "1001 product ids": (
        lambda v1, v2: list(
            v1.ListSegmentation(v1_pb2.ListSegmentationRequest(product_ids=[GOOD_IDS[0]] * 1001))
        ),
        "product_ids lists more than 1000 values",
    ),
    "1001 comma-separated ids": (
        lambda v1, v2: list(
            v1.ListSegmentation(
                v1_pb2.ListSegmentationRequest(product_ids=[",".join([GOOD_IDS[0]] * 1001)])
            )
        ),
        "product_ids lists more than 1000 values",
    ),
    "v2 1001 product ids": (
        lambda v1, v2: list(
            v2.ListSegmentation(v2_pb2.ListSegmentationRequest(product_ids=GOOD_IDS * 334))
        ),
        "product_ids lists more than 1000 values",
    ),
    "1001 categories": (
        lambda v1, v2: list(
            v1.ListProductIds(v1_pb2.ListProductIdsRequest(categories=["311"] * 1001))
        ),
        "categories lists more than 1000 values",
    ),
    "100001 vertices": (
        lambda v1, v2: list(
            v1.ListSegmentation(v1_pb2.ListSegmentationRequest(wkt=polygon_wkt(100_001)))
        ),
        "has 100002 vertices; the limit is 100000",
    ),
    "huge wkt text": (
        lambda v1, v2: list(
            v1.ListSegmentation(v1_pb2.ListSegmentationRequest(wkt=" " * 6_400_001))
        ),
        "wkt is 6400001 characters long; the limit is 6400000",
    ),
    "huge cql text": (
        lambda v1, v2: list(
            v1.SearchSegmentation(v1_pb2.SearchSegmentationRequest(query="(" * 6_400_001))
        ),
        "query is 6400001 characters long; the limit is 6400000",
    ),
    "huge geobuf": (
        lambda v1, v2: v2.CreateProduct(
            v2_pb2.CreateProductRequest(product=HUGE_GEOBUF), metadata=AUTH
        ),
        "geobuf holds 300002 coordinate values; the limit is 300000",
    ),
    "geobuf precision": (
        lambda v1, v2: v2.CreateProduct(
            v2_pb2.CreateProductRequest(
                product=geobuf_pb2.Data(precision=4_000_000_000, feature=HUGE_GEOBUF.feature)
            ),
            metadata=AUTH,
        ),
        "geobuf precision must be 0 ... 15, not 4000000000",
    ),
    "geobuf dimensions": (
        lambda v1, v2: v2.CreateProduct(
            v2_pb2.CreateProductRequest(
                product=geobuf_pb2.Data(dimensions=4_000_000_000, feature=HUGE_GEOBUF.feature)
            ),
            metadata=AUTH,
        ),
        "geobuf dimensions must be 2, 3 or 4, not 4000000000",
    ),
    "timestamp past 9999": (
        lambda v1, v2: list(
            v1.ListProductIds(v1_pb2.ListProductIdsRequest(start_date=Timestamp(seconds=2**62)))
        ),
        "outside 0001-01-01 .. 9999-12-31",
    ),
    "infinite version": (
        lambda v1, v2: list(
            v2.ListProductIds(
                v2_pb2.ListProductIdsRequest(), metadata=(("x-earthsig-version", "inf"),)
            )
        ),
        "bad model or version",
    ),
}


@pytest.mark.parametrize(("call", "message"), CAPS.values(), ids=CAPS.keys())
def test_caps_are_invalid_argument(v1, v2, call, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        call(v1, v2)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert message in info.value.details()


def test_long_messages_are_cut(v1) -> None:  # type: ignore[no-untyped-def]
    """Status messages quote requests; a huge one is cut rather than lost in transit."""
    request = v1_pb2.SearchSegmentationRequest(query="category = 311 AND " + "a" * 1_000_000)
    with pytest.raises(grpc.RpcError) as info:
        list(v1.SearchSegmentation(request))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("query names unknown properties ['aaaa")
    assert info.value.details().endswith("(truncated)") and len(info.value.details()) <= 2000


@pytest.mark.parametrize("n", [MAX_RESULTS + 1, 2**31 - 1])
def test_huge_n_results_is_clamped_to_the_server_cap(v1, v2, n) -> None:  # type: ignore[no-untyped-def]
    """The contract: "the server also has its own cap" (EARTHSIG_API_MAX_RESULTS = 2 here)."""
    area = FRANCE
    v1_answers = list(v1.ListSegmentation(v1_pb2.ListSegmentationRequest(wkt=area, n_results=n)))
    v2_answers = list(v2.ListSegmentation(v2_pb2.ListSegmentationRequest(wkt=area, n_results=n)))
    assert len(v1_answers) == MAX_RESULTS
    products = {geobuf.decode(m.segmentation.SerializeToString())["product_id"] for m in v2_answers}
    assert len(products) == MAX_RESULTS


def test_big_rasters_are_decimated_to_max_pixels(  # type: ignore[no-untyped-def]
    api_settings, api_store, catalog, channel_to
) -> None:
    server = ApiServer(api_settings.model_copy(update={"api_max_pixels": 1024}), api_store)
    server.start()
    try:
        stub = channel_to(server, "v1")
        request = v1_pb2.ListSegmentationRequest(product_ids=[GOOD_IDS[0]])
        (answer,) = stub.ListSegmentation(request)
    finally:
        server.stop(grace=0)
    raster = decode_tiff(answer.segmentation)
    assert raster.array.size <= 1024 < 120 * 120
    assert raster.transform.a == pytest.approx(10.0 * 120 / raster.array.shape[1])


# -- afterwards -----------------------------------------------------------------------------


def test_server_survived_with_bounded_memory(  # type: ignore[no-untyped-def]
    served, fuzz_channel, baseline_rss, record_property
) -> None:
    """After its own load (and, in file order, the fuzz tests above): still serving, no
    fuzzed write in, RSS growth bounded."""
    v1 = v1_pb2_grpc.DatabaseProductServiceStub(fuzz_channel)
    rng = random.Random(0)
    for i in range(OWN_LOAD_CALLS):
        raw = fuzz_channel.unary_stream(RAW_METHODS[i % len(RAW_METHODS)])
        payload = rng.randbytes(rng.randrange(300))
        check(lambda: raw(payload, timeout=CALL_TIMEOUT), "own load: raw bytes")  # noqa: B023
        if i % 40 == 0:  # an answer with rasters takes about a second
            request = v1_pb2.ListSegmentationRequest(wkt=NEAR.wkt, n_results=2)
            check(lambda: v1.ListSegmentation(request, timeout=CALL_TIMEOUT), "own load: v1 list")  # noqa: B023
    assert served.process.poll() is None
    assert served.healthy()
    ids_now = [p.product_id for p in v1.ListProductIds(v1_pb2.ListProductIdsRequest())]
    assert sorted(ids_now) == sorted(GOOD_IDS)  # no fuzzed write got in
    rss = served.rss_mib()
    total = sum(CASES.values())
    record_property("fuzz_cases", total)
    record_property("server_rss_mib", f"{baseline_rss:.1f} -> {rss:.1f}")
    print(f"fuzz cases {total}: {dict(sorted(CASES.items()))}")
    print(f"server RSS {baseline_rss:.1f} -> {rss:.1f} MiB")
    assert rss - baseline_rss < RSS_GROWTH_LIMIT_MIB, (baseline_rss, rss)
    assert "Traceback" not in served.log(), served.log()[-3000:]


def test_parallel_v1_answers_are_identical(served, fuzz_channel, baseline_rss) -> None:  # type: ignore[no-untyped-def]
    """Clients at once get the serial answer, and rasterio warns of nothing (see rasters.py)."""
    stub = v1_pb2_grpc.DatabaseProductServiceStub(fuzz_channel)
    request = v1_pb2.ListSegmentationRequest(wkt=NEAR.wkt, n_results=MAX_RESULTS)

    def answer(_: int = 0) -> list[bytes]:
        return [r.SerializeToString() for r in stub.ListSegmentation(request, timeout=60)]

    expected = answer()
    assert len(expected) == 2
    with ThreadPoolExecutor(PARALLEL_CLIENTS) as pool:
        answers = list(pool.map(answer, range(3 * PARALLEL_CLIENTS)))
    assert all(a == expected for a in answers)
    assert "NotGeoreferencedWarning" not in served.log()
