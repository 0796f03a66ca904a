"""``earthsig serve``: the SnapEarth gRPC API (V1 and V2) over the catalog."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

import click

from earthsignature.settings import Settings, load_settings
from earthsignature.storage import open_store

log = logging.getLogger(__name__)


@click.command("serve")
@click.option("--host", default=None, help="Listen address (default EARTHSIG_API_HOST).")
@click.option("--port", type=int, default=None, help="Port (default EARTHSIG_API_PORT).")
@click.option(
    "--grace",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds given to running calls on SIGTERM.",
)
@click.option(
    "--processes",
    type=int,
    default=None,
    help="Server processes sharing the port (default EARTHSIG_API_PROCESSES).",
)
def command(host: str | None, port: int | None, grace: float, processes: int | None) -> None:
    """Serve the gRPC API with reflection and health; SIGTERM/SIGINT stop it gracefully."""
    overrides = {
        k: v
        for k, v in (("api_host", host), ("api_port", port), ("api_processes", processes))
        if v is not None
    }
    settings = load_settings(**overrides)
    open_store(settings, create=False)  # a missing store is an error, not "0 products"
    if settings.api_processes > 1:
        _serve_group(settings, grace)
    else:
        _serve_one(settings, grace)


def _wait_for_signal(tick: Callable[[], object] | None = None) -> None:
    stopped = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping gracefully", signum)
        stopped.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    while not stopped.wait(1.0):
        if tick is not None:
            tick()


def _serve_group(settings: Settings, grace: float) -> None:
    from earthsignature.grpc_api.server import ServerGroup

    group = ServerGroup(settings, grace=grace)
    bound = group.start()
    click.echo(
        f"earthsig API listening on {settings.api_host}:{bound} "
        f"({'TLS' if settings.api_tls_cert else 'plaintext'}), "
        f"{settings.api_processes} processes, {group.products} products",
        err=True,
    )
    try:
        _wait_for_signal(group.revive)
    finally:
        group.stop(grace)
    click.echo("earthsig API stopped", err=True)


def _serve_one(settings: Settings, grace: float) -> None:
    from earthsignature.grpc_api.server import ApiServer

    server = ApiServer(settings, open_store(settings, create=False))
    bound = server.start()
    click.echo(
        f"earthsig API listening on {settings.api_host}:{bound} "
        f"({'TLS' if settings.api_tls_cert else 'plaintext'}), "
        f"{len(server.state.index)} products, store {server.state.store.url}",
        err=True,
    )
    _wait_for_signal()
    server.stop(grace)
    click.echo("earthsig API stopped", err=True)
