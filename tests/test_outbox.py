"""The pacer's outbox: datagrams posted while a tick's frames are taken leave together when
flushed, in order, without another thread running in between; failures are told, not
raised."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from agent.media import outbox
from agent.media.outbox import Outbox, current, send_now


def _pair(family: int = socket.AF_INET, host: str = "127.0.0.1"):
    rx = socket.socket(family, socket.SOCK_DGRAM)
    rx.bind((host, 0))
    rx.settimeout(1.0)
    tx = socket.socket(family, socket.SOCK_DGRAM)
    tx.setblocking(False)
    return tx, rx


def test_posted_datagrams_leave_when_flushed_in_order() -> None:
    tx, rx = _pair()
    told: list[bool] = []
    with tx, rx:
        with Outbox() as box:
            assert current() is box
            for n in range(3):
                box.post(tx, bytes([n]) * 12, rx.getsockname(), told.append)
        assert current() is None
        rx.setblocking(False)
        with pytest.raises(BlockingIOError):
            rx.recv(100)  # nothing has left yet
        box.flush()
        rx.settimeout(1.0)
        assert [rx.recv(100) for _ in range(3)] == [bytes([n]) * 12 for n in range(3)]
    assert told == [True, True, True]


def test_ipv6_datagrams_are_sent_too() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        tx, rx = _pair(socket.AF_INET6, "::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with tx, rx:
        assert send_now(tx, b"v6", rx.getsockname())
        assert rx.recv(100) == b"v6"


def test_a_send_that_fails_is_told_false_and_the_others_still_leave() -> None:
    tx, rx = _pair()
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.close()
    told: list[bool] = []
    with tx, rx:
        with Outbox() as box:
            box.post(closed, b"lost", rx.getsockname(), told.append)
            box.post(tx, b"kept", rx.getsockname(), told.append)
        box.flush()
        assert rx.recv(100) == b"kept"
    assert told == [False, True]


def test_no_other_thread_runs_between_the_sends_of_a_tick() -> None:
    if outbox._SENDTO is None:
        pytest.skip("libc's sendto cannot be called here; socket.sendto stands in")
    tx, rx = _pair()
    rx.setblocking(False)
    counter = [0]
    stop = threading.Event()

    def spin() -> None:  # wants the GIL all the time, as the event loop does when busy
        while not stop.is_set():
            counter[0] += 1

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        with tx, rx:
            box = Outbox()
            for _ in range(50):
                box.post(tx, b"x" * 172, rx.getsockname(), lambda ok: None)
            before = counter[0]
            box.flush()
            after = counter[0]
    finally:
        stop.set()
        spinner.join()
    assert after == before  # socket.sendto would have handed the GIL over up to 50 times


@pytest.mark.parametrize("hold", [True, False])
def test_a_flush_given_a_due_time_sends_then_and_says_when(monkeypatch, hold: bool) -> None:
    if not hold:
        monkeypatch.setattr(outbox, "_NANOSLEEP", None)  # as where libc cannot be called
    tx, rx = _pair()
    with tx, rx:
        box = Outbox()
        box.post(tx, b"due", rx.getsockname(), lambda ok: None)
        due = time.monotonic() + 0.03
        sent_at = box.flush(due)
        assert due <= sent_at < due + 0.5  # never early; late only on a starved machine
        assert rx.recv(100) == b"due"
