"""``earthsig serve``: the SnapEarth gRPC API (V1 and V2) over the catalog."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import click

from earthsignature.settings import load_settings
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
def command(host: str | None, port: int | None, grace: float) -> None:
    """Serve the gRPC API with reflection and health; SIGTERM/SIGINT stop it gracefully."""
    from earthsignature.grpc_api.server import ApiServer

    overrides = {k: v for k, v in (("api_host", host), ("api_port", port)) if v is not None}
    settings = load_settings(**overrides)
    server = ApiServer(settings, open_store(settings))
    bound = server.start()
    click.echo(
        f"earthsig API listening on {settings.api_host}:{bound} "
        f"({'TLS' if settings.api_tls_cert else 'plaintext'}), "
        f"{len(server.state.index)} products, store {server.state.store.url}",
        err=True,
    )
    stopped = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping gracefully", signum)
        stopped.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    stopped.wait()
    server.stop(grace)
    click.echo("earthsig API stopped", err=True)
