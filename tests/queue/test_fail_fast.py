"""``earthsig run`` fails fast and stops cleanly: what cannot heal is said in one line at once
(before anything is enqueued when it can be seen then), SIGTERM and Ctrl-C stop everything."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner

from earthsignature.cli import cli
from earthsignature.queue.preflight import PreflightError, cannot_heal, check_stac, check_store
from earthsignature.settings import Settings
from earthsignature.storage import LocalStore, catalog
from earthsignature.storage.errors import StoreNotFound
from earthsignature.storage.records import read_record
from earthsignature.testing.stac_server import StacServer
from tests.queue.conftest import ROOT, embedded_env, product, write_products


def _http_error(code: int) -> urllib.error.HTTPError:
    return urllib.error.HTTPError("http://stac/search", code, "answer", {}, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "says"),
    [
        (socket.gaierror(-3, "Temporary failure in name resolution"), "cannot resolve"),
        (urllib.error.URLError(socket.gaierror(-2, "Name or service not known")), "resolve"),
        (PermissionError(errno.EACCES, "Permission denied", "/data/raw"), "permission denied"),
        (_http_error(404), "HTTP 404"),
        (_http_error(401), "HTTP 401"),
        (ClientError({"Error": {"Code": "AccessDenied"}}, "PutObject"), "AccessDenied"),
        (StoreNotFound("store /nowhere does not exist"), "does not exist"),
    ],
)
def test_errors_that_cannot_heal_are_told(exc: BaseException, says: str) -> None:
    try:
        raise RuntimeError("wrapped") from exc
    except RuntimeError as wrapped:
        assert says in (cannot_heal(wrapped) or "")


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionResetError("reset by peer"),
        TimeoutError("timed out"),
        _http_error(503),
        _http_error(429),
        ClientError({"Error": {"Code": "SlowDown"}}, "PutObject"),
    ],
)
def test_errors_that_may_heal_are_retried(exc: BaseException) -> None:
    assert cannot_heal(exc) is None


def test_store_that_is_a_file_or_not_writable(tmp_path: Path) -> None:
    afile = tmp_path / "store"
    afile.write_text("not a directory")
    with pytest.raises(Exception, match="is a file, not a directory"):
        LocalStore(afile)
    if os.geteuid() == 0:
        pytest.skip("root writes to read-only directories: the permission half needs a user")
    readonly = tmp_path / "ro"
    store = LocalStore(readonly)
    readonly.chmod(0o555)
    try:
        with pytest.raises(PreflightError, match="not writable: permission denied"):
            check_store(store)
    finally:
        readonly.chmod(0o755)


def test_stac_api_without_the_collection_is_refused() -> None:
    with StacServer([]) as stac:
        check_stac(Settings(stac_api_url=stac.url))  # answers, has the collection
        with pytest.raises(PreflightError, match="has no collection 'nope'"):
            check_stac(Settings(stac_api_url=stac.url, stac_collection="nope"))


def test_offline_run_fails_at_once_in_one_line(tmp_path: Path) -> None:
    env = embedded_env(
        tmp_path / "store", EARTHSIG_STAC_API_URL="http://earthsig-no-such-host.invalid/v1"
    )
    env["EARTHSIG_STAGE_HANDLERS"] = None  # the built-in discover, so its API is checked
    result = CliRunner().invoke(cli, ["run", "--date", "2024-06-01", "--no-progress"], env=env)
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1
    assert "cannot be reached: cannot resolve a host name" in result.output


def test_store_path_that_is_a_file_fails_in_one_line(tmp_path: Path) -> None:
    afile = tmp_path / "store"
    afile.write_text("x")
    result = CliRunner().invoke(
        cli, ["run", "--date", "2024-06-01", "--no-progress"], env=embedded_env(afile)
    )
    assert result.exit_code == 2
    assert result.output == f"error: store {afile} is a file, not a directory\n"


def test_permission_denied_in_a_stage_fails_the_product_without_retries(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    write_products(store, [product("S2A_OK"), product("S2A_DENIED", denied_at="fetch")])
    env = embedded_env(store.root, EARTHSIG_RETRY_BACKOFF_SCALE="1")  # fetch retries after 10 s
    result = CliRunner().invoke(
        cli, ["run", "--date", "2026-03-01", "--no-progress", "--json", "--timeout", "60"], env=env
    )
    assert result.exit_code == 1, result.output
    summary = json.loads(result.output)
    states = {p["product_id"]: p for p in summary["products"]}
    assert states["S2A_OK"]["state"] == "committed"
    denied = states["S2A_DENIED"]
    assert (denied["state"], denied["stage"], denied["retries"]) == ("failed", "fetch", 0)
    assert "permission denied" in denied["reason"]
    record = read_record(store, "clc-baseline", 1, "2026-03-01", "S2A_DENIED")
    assert record is not None and record.details == {"attempts": "cannot heal"}


def test_a_second_run_says_its_products_were_already_committed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    write_products(store, [product("S2A_ONCE")])
    args = ["run", "--date", "2026-03-01", "--no-progress", "--timeout", "60"]
    first = CliRunner().invoke(cli, args, env=embedded_env(store.root))
    assert first.exit_code == 0, first.output
    second = CliRunner().invoke(cli, args, env=embedded_env(store.root))
    assert second.exit_code == 0, second.output
    assert "1 products found were already committed" in second.output
    assert len(list(catalog.iter_entries(store))) == 1


def _children(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_signal_stops_workers_their_children_and_redis(tmp_path: Path, signum: int) -> None:
    store = LocalStore(tmp_path / "store")
    write_products(store, [product("S2A_SLOW", block="cloud")])
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("EARTHSIG_") and k not in ("REDIS_URL", "TRITON_URL")
    }
    env.update({k: v for k, v in embedded_env(store.root).items() if v is not None})
    command = "from earthsignature.cli import main; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", command, "run", "--date", "2026-03-01", "--no-progress"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(store.list_keys("raw/")):
            time.sleep(0.2)  # fetch has run: workers and Redis are up, cloud is blocking
        assert list(store.list_keys("raw/")), "the run never reached cloud"
        children = _children(proc.pid)
        assert len(children) >= 3  # redis-server and two workers
        grandchildren = set().union(*(_children(c) for c in children))
        proc.send_signal(signum)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signum
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert f"stopped by {signal.Signals(signum).name}" in lines[0]
    assert not [p for p in children | grandchildren if _alive(p)]
