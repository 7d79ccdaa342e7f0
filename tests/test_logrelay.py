"""The log relay of the contained Asterisk: what it takes out of each line, where lines go.
(tests/test_security_e2e.py has it behind a real Asterisk and fail2ban.)"""

from __future__ import annotations

import io
import os
import socket
import stat
import threading
from pathlib import Path

import pytest

from appliance.pbx.logrelay import REDACTED, Relay, redact, serve

STAMP = "[2026-11-30 08:01:02.123]"
UNKNOWN_INVITE = (f"{STAMP} NOTICE[4012]: res_pjsip/pjsip_distributor.c:722 log_failed_request: "
                  "Request 'INVITE' from '\"Jane Doe\" <sip:+15551234567@203.0.113.9>' failed "
                  "for '203.0.113.9:5060' (callid: 8005550199-77@sbc) - No matching endpoint "
                  "found")
INVALID_ACCOUNT = (f"{STAMP} SECURITY[4012]: res_security_log.c:114 security_event_stasis_cb: "
                   'SecurityEvent="InvalidAccountID",EventTV="2026-11-30T08:01:02.123+0000",'
                   'Severity="Error",Service="PJSIP",EventVersion="1",AccountID="15551234567",'
                   'SessionID="8005550199-77@sbc",LocalAddress="IPV4/UDP/192.0.2.1/5060",'
                   'RemoteAddress="IPV4/UDP/203.0.113.9/5060"')
WRONG_PASSWORD = INVALID_ACCOUNT.replace("InvalidAccountID", "ChallengeResponseFailed") \
    .replace('AccountID="15551234567"', 'AccountID="101"')


@pytest.mark.parametrize("number", ["+15551234567", "15551234567", "5551234", "0207946000"])
def test_a_number_in_a_from_leaves_no_digit_of_it(number: str) -> None:
    line = redact(UNKNOWN_INVITE.replace("+15551234567", number))
    assert number not in line and number[-7:] not in line
    assert "Jane" not in line and "Doe" not in line
    assert f"'\"{REDACTED}\" <sip:{REDACTED}@203.0.113.9>'" in line
    # what an operator and fail2ban need stays: the address, the method, the reason
    assert "failed for '203.0.113.9:5060'" in line and "'INVITE'" in line
    assert "No matching endpoint found" in line and "NOTICE[4012]" in line


def test_an_unknown_account_is_taken_out_of_its_security_event() -> None:
    line = redact(INVALID_ACCOUNT)
    assert "5551234567" not in line and "8005550199" not in line
    assert f'AccountID="{REDACTED}"' in line
    assert 'RemoteAddress="IPV4/UDP/203.0.113.9/5060"' in line
    assert line.startswith(f"{STAMP} SECURITY[4012]: res_security_log.c:114")
    assert 'EventTV="2026-11-30T08:01:02.123+0000"' in line  # dates are not numbers


def test_a_configured_account_stays_named() -> None:
    """A phone's own account (from the configuration, not from the caller) is kept: the
    operator needs to know which phone fails its password."""
    assert 'AccountID="101"' in redact(WRONG_PASSWORD)


@pytest.mark.parametrize("text, gone", [
    ("to extension '18005550199' rejected", "18005550199"),
    ("dialled <tel:+1-555-123-4567>", "555-123-4567"),
    ('From: "O\'Brien, \\"Pat\\"" <sips:pat@example.org>', "Brien"),
    ("Contact: <sip:jane.doe@198.51.100.7:5060>", "jane.doe"),
    ("from '\"+44 20 7946 0000\" <sip:anonymous@192.0.2.7>'", "7946"),
    ("callid: 5551234567-3@sbc", "5551234567"),
])
def test_numbers_and_names_anywhere(text: str, gone: str) -> None:
    assert gone not in redact(text)


def test_addresses_ports_and_process_ids_are_left_alone() -> None:
    line = (f"{STAMP} WARNING[1234567][C-0000001a]: chan_pjsip.c:3012 x: "
            "203.0.113.9:5060 port 65535 took 1234 ms")
    assert redact(line) == line


def test_lines_are_routed_redacted_and_copied(tmp_path: Path) -> None:
    copy = io.StringIO()
    relay = Relay(tmp_path / "log", copy)
    relay.write([UNKNOWN_INVITE + "\n", INVALID_ACCOUNT + "\r\n", "Asterisk Ready.\n"])
    security = (tmp_path / "log/security.log").read_text().splitlines()
    messages = (tmp_path / "log/messages.log").read_text().splitlines()
    assert security == [redact(INVALID_ACCOUNT)]
    assert messages == [redact(UNKNOWN_INVITE), "Asterisk Ready."]
    assert copy.getvalue().splitlines() == [redact(UNKNOWN_INVITE), redact(INVALID_ACCOUNT),
                                            "Asterisk Ready."]  # in the order said
    for log in ("security.log", "messages.log"):
        assert stat.S_IMODE((tmp_path / "log" / log).stat().st_mode) & 0o007 == 0
    assert relay.lines == 3


def test_only_the_security_level_makes_a_security_line(tmp_path: Path) -> None:
    relay = Relay(tmp_path, None)
    planted = UNKNOWN_INVITE.replace("No matching endpoint found",
                                     "x SECURITY[1]: " + INVALID_ACCOUNT.split(": ", 1)[1])
    relay.write([planted])
    assert (tmp_path / "security.log").read_text() == ""
    assert (tmp_path / "messages.log").read_text().count("\n") == 1


def test_both_logs_are_there_before_the_first_line(tmp_path: Path) -> None:
    Relay(tmp_path / "log", None)  # fail2ban's jail and doctor need the file to read
    for log in ("security.log", "messages.log"):
        assert (tmp_path / "log" / log).read_text() == ""


def test_a_rotated_log_is_followed(tmp_path: Path) -> None:
    relay = Relay(tmp_path, None)
    relay.write([INVALID_ACCOUNT])
    (tmp_path / "security.log").rename(tmp_path / "security.log.1")  # logrotate
    relay.write([WRONG_PASSWORD])
    assert (tmp_path / "security.log").read_text() == redact(WRONG_PASSWORD) + "\n"
    assert (tmp_path / "security.log.1").read_text() == redact(INVALID_ACCOUNT) + "\n"


def test_a_link_planted_in_place_of_a_log_is_not_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("")
    (tmp_path / "log").mkdir()
    (tmp_path / "log/security.log").symlink_to(elsewhere)
    relay = Relay(tmp_path / "log", None)
    with pytest.raises(OSError):
        relay.write([INVALID_ACCOUNT])
    assert elsewhere.read_text() == ""


def test_a_pipe_is_relayed_to_its_end(tmp_path: Path) -> None:
    read, write = os.pipe()
    relay = Relay(tmp_path, None)
    with open(read, "rb") as stream:
        thread = threading.Thread(target=relay.pump, args=(stream,), daemon=True)
        thread.start()
        os.write(write, (UNKNOWN_INVITE + "\n").encode() + b"\xff\xfe broken bytes\n")
        os.close(write)
        thread.join(5)
    assert not thread.is_alive()
    lines = (tmp_path / "messages.log").read_text().splitlines()
    assert lines[0] == redact(UNKNOWN_INVITE) and lines[1].endswith("broken bytes")


def test_a_socket_is_served(tmp_path: Path) -> None:
    """systemd connects Asterisk's standard output to a socket the relay listens on."""
    path = tmp_path / "console.sock"
    relay = Relay(tmp_path / "log", None)
    threading.Thread(target=serve, args=(relay, path), daemon=True).start()
    for _ in range(100):
        if path.exists():
            break
        threading.Event().wait(0.02)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(path))
        sock.sendall((INVALID_ACCOUNT + "\n").encode())
    log = tmp_path / "log/security.log"
    for _ in range(100):
        if log.exists() and log.read_text():
            break
        threading.Event().wait(0.02)
    assert log.read_text() == redact(INVALID_ACCOUNT) + "\n"
