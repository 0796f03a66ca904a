"""Several API server processes on one port (``api_processes``), each with its own index."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from earthsignature.grpc_api import ingest
from earthsignature.grpc_api.server import ServerGroup
from earthsignature.proto.stubs import v1_pb2, v1_pb2_grpc
from earthsignature.runtime import Runtime
from earthsignature.settings import Settings
from earthsignature.storage import LocalStore
from tests.api.conftest import MODEL, VERSION, aoi_box, sample_products, upload_of

PRODUCTS = sample_products()
AREA = aoi_box(500_100, 4_980_100, 500_200, 4_980_200)  # meets the first two products


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerGroup]:
    root: Path = tmp_path_factory.mktemp("processes")
    settings = Settings(
        store=str(root),
        model_name=MODEL,
        model_version=VERSION,
        api_host="127.0.0.1",
        api_port=0,
        api_processes=2,
        api_workers=2,
        api_refresh_seconds=3600,
        min_mapping_unit_m2=0.0,
    )
    runtime = Runtime(settings=settings, store=LocalStore(root))
    for product in PRODUCTS:
        ingest.ingest(runtime, upload_of(product))
    servers = ServerGroup(settings, grace=1.0, start_timeout=120)
    servers.start()
    try:
        yield servers
    finally:
        servers.stop(grace=1.0)
    assert not any(p.is_alive() for p in servers.processes)


def product_ids(port: int) -> list[str]:
    """One call on a fresh connection (so the kernel picks a process for it)."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = v1_pb2_grpc.DatabaseProductServiceStub(channel)
        request = v1_pb2.ListProductIdsRequest(wkt=AREA.wkt)
        return [r.product_id for r in stub.ListProductIds(request, timeout=30)]


def test_group_starts_every_process_on_one_port(group: ServerGroup) -> None:
    assert group.port > 0 and group.products == len(PRODUCTS)
    assert len(group.processes) == 2 and all(p.is_alive() for p in group.processes)
    expected = [PRODUCTS[1].product_id, PRODUCTS[0].product_id]
    assert all(product_ids(group.port) == expected for _ in range(6))


@pytest.mark.parametrize("survivor", [1, 0])
def test_each_process_answers_alone_and_a_dead_one_is_restarted(
    group: ServerGroup, survivor: int
) -> None:
    victim = group.processes[1 - survivor]
    survivor_pid = group.processes[survivor].pid
    os.kill(victim.pid, signal.SIGTERM)  # type: ignore[arg-type]
    victim.join(timeout=30)
    assert not victim.is_alive()
    # only the survivor listens now, and it answers on the shared port
    assert product_ids(group.port) == [PRODUCTS[1].product_id, PRODUCTS[0].product_id]
    assert group.revive() == 1
    assert group.processes[survivor].pid == survivor_pid
    assert group.processes[1 - survivor].pid != victim.pid
    assert all(p.is_alive() for p in group.processes)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL])
def test_earthsig_serve_runs_processes_and_stops_them(
    group: ServerGroup, stop_signal: signal.Signals
) -> None:
    """``earthsig serve --processes 2``: one port, two server processes; SIGTERM stops all
    gracefully, and after a SIGKILL of the parent its orphans stop by themselves."""
    env = {
        **os.environ,
        "EARTHSIG_STORE": group.settings.store,
        "EARTHSIG_MODEL_NAME": MODEL,
        "EARTHSIG_API_HOST": "127.0.0.1",
        "EARTHSIG_API_PORT": "0",
    }
    earthsig = Path(sys.executable).parent / "earthsig"
    process = subprocess.Popen(
        [str(earthsig), "serve", "--processes", "2", "--grace", "1"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+) .*2 processes", line)
        assert match, line
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        assert len(children) >= 2  # the server processes (and multiprocessing's tracker)
        assert product_ids(int(match.group(1))) == [PRODUCTS[1].product_id, PRODUCTS[0].product_id]
        process.send_signal(stop_signal)
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if stop_signal == signal.SIGTERM:
        assert process.returncode == 0, err
        assert "stopped" in err
    assert wait_until(lambda: not any(running(pid) for pid in children), 15)


def running(pid: str) -> bool:
    """A process exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        time.sleep(0.1)
    return condition()
