"""sd_notify from the event loop: a receiver that does not read must not stall the daemon."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from agent.notify import notify, watchdog_interval


def test_a_full_receiver_drops_messages_instead_of_blocking(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        results: list[bool] = []
        # A blocking send would wait for the receiver forever: run it where that shows.
        sender = threading.Thread(target=lambda: results.extend(
            notify("WATCHDOG=1") for _ in range(2000)), daemon=True)
        sender.start()
        sender.join(timeout=60)
        assert not sender.is_alive(), "notify blocked on a receiver that does not read"
        assert len(results) == 2000
        assert results[0] and not all(results)  # the first got through, the overflow dropped
        assert receiver.recv(64) == b"WATCHDOG=1"


def test_abstract_socket_names_and_no_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False
    name = f"switchboard-test-{id(monkeypatch)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify("READY=1", "STATUS=serving") is True
        assert receiver.recv(64) == b"READY=1\nSTATUS=serving"


def test_watchdog_interval_is_half_the_timeout_for_this_process(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 1.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getppid()))  # meant for another process
    assert watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_USEC")
    assert watchdog_interval() is None
