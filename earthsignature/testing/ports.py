"""Free loopback ports."""

from __future__ import annotations

import random
import socket


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_block(count: int, *, extra_offsets: tuple[int, ...] = ()) -> int:
    """A base port such that base..base+count-1 (and base+offset for each extra) are free."""
    for _ in range(200):
        base = random.randrange(20000, 45000)
        wanted = [*range(base, base + count), *(base + off for off in extra_offsets)]
        if all(port_is_free(p) for p in wanted):
            return base
    raise OSError(f"no block of {count} free loopback ports")
