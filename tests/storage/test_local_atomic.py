"""On local disk a reader never sees a half-written object."""

from __future__ import annotations

import threading
from pathlib import Path

from earthsignature.storage import LocalStore


def test_concurrent_reader_sees_whole_versions_only(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    versions = [bytes([i]) * (2 * 1024 * 1024) for i in range(1, 6)]
    store.put_bytes("obj.bin", versions[0])
    seen: set[bytes] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            data = store.get_bytes("obj.bin")
            seen.add(data[:1] + data[-1:] + len(data).to_bytes(4, "big"))

    thread = threading.Thread(target=reader)
    thread.start()
    for _ in range(5):
        for payload in versions:
            store.put_bytes("obj.bin", payload)
    stop.set()
    thread.join()
    whole = {v[:1] + v[-1:] + len(v).to_bytes(4, "big") for v in versions}
    assert seen <= whole


def test_temp_files_are_not_listed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put_bytes("a/x.txt", b"x")
    (tmp_path / "a" / ".tmp-deadbeef-y.txt").write_bytes(b"partial")
    assert [i.key for i in store.list_keys("a/")] == ["a/x.txt"]
