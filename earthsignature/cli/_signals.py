"""Stopping a long command cleanly: SIGTERM and Ctrl-C unwind it, so its context managers
stop the workers, their children and the embedded Redis, and it ends with one line."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import click


class Stopped(BaseException):
    """Raised in the main thread by SIGTERM or SIGINT (a BaseException, like
    KeyboardInterrupt, so no ``except Exception`` on the way swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextmanager
def stop_on_signals(command: str) -> Iterator[None]:
    """Turn SIGTERM/SIGINT into :class:`Stopped`; say so in one line and exit 128+signal."""
    signals = (signal.SIGTERM, signal.SIGINT)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        for sig in signals:  # the clean-up that follows is not interrupted again
            signal.signal(sig, signal.SIG_IGN)
        raise Stopped(signum)

    previous = {sig: signal.signal(sig, _stop) for sig in signals}
    try:
        yield
    except Stopped as stop:
        click.echo(
            f"earthsig {command}: stopped by {stop}; workers and the embedded Redis are"
            " stopped (products not committed are picked up by the next run)",
            err=True,
        )
        sys.exit(stop.exit_code)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
