"""The ``earthsig`` command line.

Each module in this package defines one top-level ``command`` (a click command or group);
they are collected here, so a new command is a new module and nothing else changes.
Settings are loaded when a command runs, never at import time.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys

import click

from earthsignature import __version__
from earthsignature.errors import EarthSignatureError


class _Cli(click.Group):
    """Turns the package's own errors into a one-line message and exit status 2."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except EarthSignatureError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="earthsig")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """EarthSignature: Sentinel-2 L2A products to CORINE land-cover maps.

    Every option comes from the environment (EARTHSIG_*, see README and `earthsig config`).
    """
    from earthsignature.logs import configure_logging
    from earthsignature.settings import load_settings

    try:
        fmt = load_settings().log_format
    except EarthSignatureError:  # the command itself reports bad settings
        fmt = "text"
    configure_logging(logging.WARNING - 10 * min(verbose, 2), fmt)


def _register() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{module.name}")
        command = getattr(mod, "command", None)
        if isinstance(command, click.Command):
            cli.add_command(command)


_register()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="earthsig")
