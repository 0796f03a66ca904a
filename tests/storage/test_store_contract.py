"""The storage contract, run against the local backend and two real S3 servers (SeaweedFS,
moto's server)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from earthsignature.storage import InvalidKey, ObjectNotFound, ObjectStore


@pytest.fixture(params=["local", "s3", "moto"])
def store(request: pytest.FixtureRequest) -> ObjectStore:
    """Each contract test runs on the local backend, SeaweedFS and moto's S3 server."""
    return request.getfixturevalue(f"{request.param}_store")


def test_round_trip_bytes(store: ObjectStore) -> None:
    store.put_bytes("a/b/c.bin", b"hello world")
    assert store.get_bytes("a/b/c.bin") == b"hello world"
    assert store.size("a/b/c.bin") == 11
    assert store.exists("a/b/c.bin")


def test_overwrite_replaces_content(store: ObjectStore) -> None:
    store.put_bytes("k.txt", b"first")
    store.put_bytes("k.txt", b"second, longer")
    assert store.get_bytes("k.txt") == b"second, longer"


def test_round_trip_file(store: ObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(4096))
    store.put_file("files/in.bin", src)
    out = tmp_path / "out.bin"
    store.download("files/in.bin", out)
    assert out.read_bytes() == src.read_bytes()


@pytest.mark.parametrize(
    ("start", "length", "expected"),
    [(0, 5, b"01234"), (3, 4, b"3456"), (8, 10, b"89"), (10, 5, b""), (0, 0, b"")],
)
def test_ranged_reads(store: ObjectStore, start: int, length: int, expected: bytes) -> None:
    store.put_bytes("r.bin", b"0123456789")
    assert store.get_range("r.bin", start, length) == expected


def test_prefix_listing_is_sorted_and_bounded(store: ObjectStore) -> None:
    for key in ["p/2.txt", "p/1.txt", "p/sub/3.txt", "pq/4.txt", "other/5.txt"]:
        store.put_bytes(key, key.encode())
    assert [i.key for i in store.list_keys("p/")] == ["p/1.txt", "p/2.txt", "p/sub/3.txt"]
    assert [i.key for i in store.list_keys("p")] == [
        "p/1.txt",
        "p/2.txt",
        "p/sub/3.txt",
        "pq/4.txt",
    ]
    assert {i.size for i in store.list_keys("p/")} == {7, 11}
    assert store.list_dirs("p/") == ["p/sub/"]
    assert store.list_dirs("") == ["other/", "p/", "pq/"]
    assert list(store.list_keys("nothing/")) == []


def test_delete_and_delete_prefix(store: ObjectStore) -> None:
    store.put_bytes("d/1", b"1")
    store.put_bytes("d/2", b"2")
    store.put_bytes("keep/3", b"3")
    store.delete("d/1")
    store.delete("d/never-existed")  # not an error
    assert not store.exists("d/1")
    assert store.delete_prefix("d/") == 1
    assert [i.key for i in store.list_keys("")] == ["keep/3"]
    with pytest.raises(InvalidKey):
        store.delete_prefix("")


@pytest.mark.parametrize("op", ["get_bytes", "size", "get_range", "download"])
def test_missing_keys_raise_object_not_found(store: ObjectStore, op: str, tmp_path: Path) -> None:
    args: dict[str, tuple[object, ...]] = {
        "get_bytes": (),
        "size": (),
        "get_range": (0, 10),
        "download": (tmp_path / "x",),
    }
    with pytest.raises(ObjectNotFound, match="no/such/key"):
        getattr(store, op)("no/such/key", *args[op])
    assert not store.exists("no/such/key")


@pytest.mark.parametrize(
    "key", ["../escape", "a/../../etc/passwd", "/abs/path", "a//b", "a/./b", "", "a\\b", "x/.."]
)
def test_traversal_keys_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(InvalidKey):
        store.put_bytes(key, b"x")
    with pytest.raises(InvalidKey):
        store.get_bytes(key)


def test_multipart_upload_of_large_object(store: ObjectStore, tmp_path: Path) -> None:
    payload = os.urandom(21 * 1024 * 1024)  # > 20 MB: several 8 MiB parts on S3
    src = tmp_path / "big.bin"
    src.write_bytes(payload)
    store.put_file("big/object.bin", src)
    assert store.size("big/object.bin") == len(payload)
    assert (
        store.get_range("big/object.bin", 20 * 1024 * 1024, 16)
        == payload[20 * 1024 * 1024 : 20 * 1024 * 1024 + 16]
    )
    out = tmp_path / "back.bin"
    store.download("big/object.bin", out)
    assert out.read_bytes() == payload


def test_staged_file_publishes_only_on_success(store: ObjectStore) -> None:
    with store.staged_file("staged/ok.txt") as path:
        path.write_text("complete")
    assert store.get_bytes("staged/ok.txt") == b"complete"
    with pytest.raises(RuntimeError), store.staged_file("staged/bad.txt") as path:
        path.write_text("half")
        raise RuntimeError("crash while writing")
    assert not store.exists("staged/bad.txt")
