"""``earthsig viewer``: serve the local web map of committed products and their statistics."""

from __future__ import annotations

import threading

import click

from earthsignature.settings import load_settings
from earthsignature.storage import open_store


@click.command("viewer")
@click.option("--host", default="127.0.0.1", show_default=True, help="Listen address.")
@click.option("--port", type=int, default=8765, show_default=True, help="Port (0: any free).")
def command(host: str, port: int) -> None:
    """Serve the map viewer (works offline); Ctrl-C stops it."""
    from earthsignature.viewer import ViewerServer

    settings = load_settings()
    server = ViewerServer(settings, open_store(settings, create=False), host=host, port=port)
    url = server.start()
    click.echo(f"earthsig viewer on {url} (store {server.httpd.store.url})", err=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
