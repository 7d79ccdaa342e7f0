"""One pacing tick's datagrams, sent together when due, without giving up the GIL.

A Python thread is not punctual when others want the GIL: it is made to hand the GIL over
between two bytecodes once another thread has waited a switch interval (1 ms), and it must
wait as long again to win it back; every socket call lets go of it too. Taking and sending
four calls' frames took 0.5 ms (p50) to 2 ms (p99) of a tick that way, all of it late. So
the pacer takes each call's frame a few milliseconds ahead, and the senders post their
datagrams here. ``flush(due)`` then runs as one chain of C calls (``itertools.starmap``,
which executes no bytecode between them): a sleep with the GIL released until 1 ms before
``due``, a sleep that keeps the GIL until ``due`` (libc's ``clock_nanosleep`` through
``ctypes.PyDLL``), and libc's ``sendto`` for each datagram, the GIL held (a non-blocking
send takes microseconds). Once the GIL has been won back, nothing else runs until the last
datagram has left. Lock-step at four calls, four runs each on the same machine, pacing at
the caller (p99 / max): 1.4-2.3 / 4.1-7.7 ms before, 0.9-1.6 / 3.2-4.9 ms after.

Where libc cannot be called that way (not Linux, an address family other than IPv4/IPv6),
the datagram goes out through ``socket.sendto`` and the wait is a plain sleep.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import operator
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

MSG_DONTWAIT = 0x40  # Linux: never wait for buffer space (the GIL is held)

Sent = Callable[[bool], None]  # told whether the datagram was handed to the kernel

_local = threading.local()


def _libc_sendto() -> Callable[..., int] | None:
    try:
        sendto = ctypes.PyDLL(None).sendto  # PyDLL: the GIL is kept during the call
    except (OSError, AttributeError):
        return None
    sendto.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int,
                       ctypes.c_char_p, ctypes.c_uint32]
    sendto.restype = ctypes.c_ssize_t
    return sendto


_SENDTO = _libc_sendto() if socket.MSG_DONTWAIT == MSG_DONTWAIT else None

CLOCK_MONOTONIC, TIMER_ABSTIME = 1, 1  # Linux; time.monotonic() reads CLOCK_MONOTONIC
HOLD = 0.001  # the last stretch of the wait is slept holding the GIL (see Outbox.flush)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _libc_nanosleep() -> Callable[..., int] | None:
    if time.get_clock_info("monotonic").implementation != "clock_gettime(CLOCK_MONOTONIC)":
        return None
    try:
        nanosleep = ctypes.PyDLL(None).clock_nanosleep  # sleeps without letting go of the GIL
    except (OSError, AttributeError):
        return None
    nanosleep.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Timespec),
                          ctypes.c_void_p]
    nanosleep.restype = ctypes.c_int
    return nanosleep


_NANOSLEEP = _libc_nanosleep() if _SENDTO is not None else None


def _wait_until(due: float, hold: bool) -> list[tuple]:
    """The calls that wait until ``due``: a plain sleep (the GIL free) until ``HOLD`` before
    it, then (with ``hold``), once the GIL is won back, a sleep that keeps it until ``due``."""
    if _NANOSLEEP is None or not hold:
        return [(time.sleep, max(0.0, due - time.monotonic()))]
    seconds = int(due)
    when = _Timespec(seconds, int((due - seconds) * 1e9))
    return [(time.sleep, max(0.0, due - HOLD - time.monotonic())),
            (_NANOSLEEP, CLOCK_MONOTONIC, TIMER_ABSTIME, ctypes.byref(when), None)]


@functools.lru_cache(maxsize=1024)
def sockaddr(family: int, addr: tuple) -> bytes | None:
    """The C ``struct sockaddr_in``/``sockaddr_in6`` for ``addr``; None for other families or
    an address that is not numeric. Cached: a call sends to the same address every tick."""
    try:
        if family == socket.AF_INET:
            return (struct.pack("=H", family) + struct.pack("!H", addr[1])
                    + socket.inet_pton(socket.AF_INET, addr[0]) + bytes(8))
        if family == socket.AF_INET6:
            flow, scope = (addr[2], addr[3]) if len(addr) >= 4 else (0, 0)
            return (struct.pack("=H", family) + struct.pack("!HI", addr[1], flow)
                    + socket.inet_pton(socket.AF_INET6, addr[0]) + struct.pack("=I", scope))
    except (OSError, ValueError, IndexError, TypeError, struct.error):
        return None
    return None


def _send_python(sock: socket.socket, data: bytes, addr: tuple) -> int:
    try:
        sock.sendto(data, addr)
    except OSError:
        return -1
    return len(data)


def _call(sock: socket.socket, data: bytes, addr: tuple) -> tuple:
    """The call that sends one datagram without waiting, as (function, *arguments); it
    returns < 0 when the kernel did not take it (a full buffer, a closed socket, a refused
    destination: dropped, as a network would)."""
    native = sockaddr(sock.family, addr) if _SENDTO is not None else None
    if native is None or sock.fileno() < 0:
        return (_send_python, sock, data, addr)
    return (_SENDTO, sock.fileno(), data, len(data), MSG_DONTWAIT, native, len(native))


def send_now(sock: socket.socket, data: bytes, addr: tuple) -> bool:
    """Send one datagram without waiting; whether the kernel took it."""
    function, *arguments = _call(sock, data, addr)
    return function(*arguments) >= 0


@dataclass
class Outbox:
    """The datagrams posted while one tick's frames were taken, in order."""

    calls: list[tuple] = field(default_factory=list)
    told: list[Sent] = field(default_factory=list)

    def post(self, sock: socket.socket, data: bytes, addr: tuple, sent: Sent) -> None:
        self.calls.append(_call(sock, data, addr))
        self.told.append(sent)

    def flush(self, due: float | None = None) -> float:
        """Send everything posted, back to back (once ``due`` on the monotonic clock, when
        given), then tell each poster how it went; the time the last one left.

        Waiting and sending are one chain of C calls (``itertools.starmap``): the
        interpreter hands the GIL to another thread only between two bytecodes, so once the
        wait has won the GIL back nothing runs before the last datagram has left."""
        calls, told = self.calls, self.told
        self.calls, self.told = [], []
        waits = [] if due is None else _wait_until(due, hold=bool(calls))
        *results, sent_at = itertools.starmap(operator.call,
                                              [*waits, *calls, (time.monotonic,)])
        for sent, result in zip(told, results[len(waits):], strict=True):
            sent(result >= 0)
        return sent_at

    def __enter__(self) -> Outbox:
        """While inside, ``current()`` on this thread is this outbox (``flush`` sends)."""
        _local.outbox = self
        return self

    def __exit__(self, *exc: object) -> None:
        _local.outbox = None


def current() -> Outbox | None:
    """The outbox of the tick this thread is running, if any (else send at once)."""
    return getattr(_local, "outbox", None)
