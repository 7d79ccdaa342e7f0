"""Ports for sandboxes (test runs, benches), chosen free at run time so they can run side
by side on one machine."""

from __future__ import annotations

import fcntl
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Ports are chosen at run time so that sandboxes (test runs, benches) can run side by side.
# They come from blocks of the pool below Linux's ephemeral ports (32768+, which outgoing
# connections take at random); a block is held with a lock file for the life of the process
# and used only if every port in it is free to bind.
PORT_POOL = range(20000, 32700)
PORT_BLOCK = 100
PORT_LOCKS = Path(tempfile.gettempdir()) / "switchboard-ports"


@dataclass(frozen=True)
class PortPlan:
    """The ports of one sandbox: single services, and ranges (both ends inclusive)."""

    sip: int
    carrier: int
    ari: int
    ami: int
    metrics: int
    tool_server: int
    closed: int  # reserved and never bound: connections to it are refused
    rtp: range  # the appliance Asterisk's RTP (4 ports per call)
    media: range  # the daemon's ExternalMedia ports
    carrier_rtp: range
    tls: int = 0  # the appliance Asterisk's SIP TLS transport
    carrier_tls: int = 0  # the carrier's SIP TLS transport


def _port_free(port: int) -> bool:
    """Nothing has ``port`` bound, TCP or UDP, on any address."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("", port))
            except OSError:
                return False
    return True


def _lock(path: Path, wait: bool = False) -> int | None:
    """An open, flock()ed ``path``; None if another process holds it (and not ``wait``)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    except PermissionError:  # another user's lock file, unreadable: theirs
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _reserve(blocks: int, held: list[int], pool: range) -> range:
    start = pool.start
    while start + blocks * PORT_BLOCK <= pool.stop:
        fds: list[int] = []
        for block in range(start, start + blocks * PORT_BLOCK, PORT_BLOCK):
            fd = _lock(PORT_LOCKS / f"{block}.lock")
            if fd is None:
                break
            fds.append(fd)
            if not all(map(_port_free, range(block, block + PORT_BLOCK))):
                break
        else:
            held.extend(fds)
            return range(start, start + blocks * PORT_BLOCK)
        for fd in fds:
            os.close(fd)
        start = block + PORT_BLOCK
    raise RuntimeError(f"no {blocks * PORT_BLOCK} free ports left in {pool.start}-"
                       f"{pool.stop - 1} (other sandboxes or services hold them)")


def reserve_ports(sizes: list[int], held: list[int], pool: range = PORT_POOL) -> list[range]:
    """A range of ``n`` adjacent free blocks of the pool for each ``n`` in ``sizes``, locked
    (the lock files go to ``held``). One process allocates at a time."""
    try:
        PORT_LOCKS.mkdir()
        PORT_LOCKS.chmod(0o1777)  # shared by every user's sandboxes, like /tmp
    except FileExistsError:
        pass
    allocating = _lock(PORT_LOCKS / "allocating.lock", wait=True)
    try:
        return [_reserve(n, held, pool) for n in sizes]
    finally:
        if allocating is not None:
            os.close(allocating)


_held_locks: list[int] = []  # kept open: the blocks stay ours until this process exits
_plan: PortPlan | None = None


def another_plan() -> PortPlan:
    """A port plan of its own (for a second appliance next to this process's), held until
    the process ends."""
    singles, rtp, media, carrier_rtp = reserve_ports([1, 4, 2, 1], _held_locks)
    return PortPlan(*singles[:7], rtp=rtp, media=media, carrier_rtp=carrier_rtp,
                    tls=singles[7], carrier_tls=singles[8])


def ports() -> PortPlan:
    """This process's port plan, reserved on first use."""
    global _plan
    if _plan is None:
        _plan = another_plan()
    return _plan
