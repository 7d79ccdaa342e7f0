"""Call recordings: alignment of both sides, the sealed format, the writer thread, the
link from the records and purging, the key check, and a whole call on virtual time."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from test_daemon import Rig, agent

from agent.recording import index
from agent.recording.mixer import StereoMixer
from agent.recording.reader import decode, recording_bytes
from agent.recording.sealed import (
    HEADER_BYTES,
    SealedError,
    SealedWriter,
    new_key,
    open_sealed,
    read_key,
)
from agent.recording.writer import CallRecording, RecordingSpec
from agent.records import CallRecorder, CallStore
from appliance.config.recording_check import key_file_problem
from appliance.ops.recording import NoRecording, RecordingPlace, export

KEY = bytes(range(32))


def tone(freq: float, seconds: float, rate: int = 8000, start: float = 0.0) -> np.ndarray:
    t = start + np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * 8000).astype(np.int16)


def energy_at(x: np.ndarray, freq: float, rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(float)))
    return float(spectrum[int(freq * len(x) / rate)])


# -- the mixer ------------------------------------------------------------------------------
def test_caller_chunks_of_any_size_line_up_with_the_agents_frames() -> None:
    mixer = StereoMixer(8000)
    caller = np.arange(24000, dtype=np.int16)
    out = []
    for tick in range(150):  # 3 s: agent 20 ms frames, caller 30 ms packets every 1.5 ticks
        mixer.agent(np.full(160, tick, dtype=np.int16))
        if tick % 3 in (0, 1):
            i = (tick // 3 * 2 + tick % 3) * 240
            mixer.caller(caller[i:i + 240])
        out.append(mixer.take())
    out.append(mixer.finish())
    stereo = np.concatenate(out)
    assert len(stereo) == 24000
    assert np.array_equal(stereo[:, 0], caller)
    assert np.array_equal(stereo[:, 1], np.repeat(np.arange(150, dtype=np.int16), 160))


def test_a_caller_who_sends_nothing_is_silence_and_later_speech_stays_in_place() -> None:
    mixer = StereoMixer(8000, max_lag=0.2)
    for _ in range(100):  # 2 s of agent, no caller packets at all
        mixer.agent(np.zeros(160, dtype=np.int16))
    mixer.caller(np.full(160, 7, dtype=np.int16))
    stereo = np.concatenate([mixer.take(), mixer.finish()])
    speech = np.flatnonzero(stereo[:, 0])
    assert len(speech) == 160
    assert speech[0] == pytest.approx(2.0 * 8000 - 0.2 * 8000, abs=1)  # trails by the lag


# -- the sealed format -------------------------------------------------------------------
class Buffer:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, b: bytes) -> None:
        self.data += b

    def flush(self) -> None:
        pass


def sealed(tmp_path: Path, writes: list[tuple[int, bytes]], close: bool = True) -> Path:
    out = Buffer()
    writer = SealedWriter(out, KEY)  # type: ignore[arg-type]
    for offset, data in writes:
        writer.seek(offset)
        writer.write(data)
        writer.seal()
    if close:
        writer.close()
    path = tmp_path / "x.sealed"
    path.write_bytes(bytes(out.data))
    return path


def test_sealed_round_trip_with_a_header_rewritten_at_the_end(tmp_path) -> None:
    path = sealed(tmp_path, [(0, b"HEAD0000"), (8, b"body" * 1000), (4, b"1234")])
    data, finished = open_sealed(path, KEY)
    assert finished
    assert data == b"HEAD1234" + b"body" * 1000
    assert b"body" not in path.read_bytes()  # it is encrypted


def test_a_sealed_file_cut_short_keeps_every_whole_chunk(tmp_path) -> None:
    path = sealed(tmp_path, [(0, b"a" * 100), (100, b"b" * 100), (200, b"c" * 100)],
                  close=False)
    raw = path.read_bytes()
    path.write_bytes(raw[:-10])  # the crash hit while the last chunk was written
    data, finished = open_sealed(path, KEY)
    assert not finished
    assert data == b"a" * 100 + b"b" * 100


def test_a_sealed_file_with_its_end_cut_off_is_not_called_finished(tmp_path) -> None:
    path = sealed(tmp_path, [(0, b"a" * 100), (100, b"b" * 100)])
    raw = path.read_bytes()
    last = 4 + 16 + 8  # the empty final chunk: length, tag, offset
    path.write_bytes(raw[:-last])
    data, finished = open_sealed(path, KEY)
    assert data == b"a" * 100 + b"b" * 100 and not finished


def test_wrong_key_tampering_and_reordering_are_refused(tmp_path) -> None:
    path = sealed(tmp_path, [(0, b"a" * 100), (100, b"b" * 100)])
    with pytest.raises(SealedError, match="wrong key"):
        open_sealed(path, bytes(32))
    raw = bytearray(path.read_bytes())
    raw[HEADER_BYTES + 10] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(SealedError):
        open_sealed(path, KEY)
    path = sealed(tmp_path, [(0, b"a" * 100), (100, b"b" * 100)])
    raw = path.read_bytes()
    chunk = 4 + 8 + 100 + 16
    first, second = raw[HEADER_BYTES:HEADER_BYTES + chunk], raw[HEADER_BYTES + chunk:
                                                                HEADER_BYTES + 2 * chunk]
    path.write_bytes(raw[:HEADER_BYTES] + second + first + raw[HEADER_BYTES + 2 * chunk:])
    with pytest.raises(SealedError):
        open_sealed(path, KEY)


def test_a_key_must_be_private_and_the_right_size(tmp_path) -> None:
    path = tmp_path / "rec.key"
    path.write_text(new_key() + "\n")
    path.chmod(0o644)
    with pytest.raises(SealedError, match="chmod 600"):
        read_key(path)
    assert "chmod 600" in key_file_problem(path)[1]
    path.chmod(0o600)
    assert len(read_key(path)) == 32
    assert key_file_problem(path) is None
    path.write_text("c2hvcnQ=\n")
    assert "holds 5 bytes" in key_file_problem(path)[0]
    assert "does not exist" in key_file_problem(tmp_path / "nope.key")[0]


# -- the writer ----------------------------------------------------------------------------
def feed(rec: CallRecording, seconds: float) -> None:
    for i in range(int(seconds * 50)):
        rec.caller(tone(300, 0.02, start=i * 0.02))
        rec.agent(tone(1000, 0.02, start=i * 0.02))


@pytest.mark.parametrize("fmt", ["opus", "flac", "wav"])
@pytest.mark.parametrize("key", [None, KEY])
def test_a_recording_is_stereo_caller_left_agent_right(tmp_path, fmt, key) -> None:
    path = tmp_path / f"call.{fmt}"
    rec = CallRecording(path, 8000, fmt, key)
    feed(rec, 3.0)
    rec.close()
    rec.join(5)
    assert rec.failed is None
    assert path.stat().st_mode & 0o777 == 0o600
    data, finished = recording_bytes(path, key)
    assert finished
    pcm, rate = decode(data)
    assert rate == 8000 and pcm.shape[1] == 2
    assert len(pcm) == pytest.approx(24000, abs=400)
    left, right = pcm[4000:20000, 0], pcm[4000:20000, 1]
    assert energy_at(left, 300) > 10 * energy_at(left, 1000)
    assert energy_at(right, 1000) > 10 * energy_at(right, 300)


@pytest.mark.parametrize("fmt", ["opus", "flac"])
def test_a_recording_is_on_disk_while_the_call_goes_on(tmp_path, fmt) -> None:
    path = tmp_path / f"call.{fmt}"
    rec = CallRecording(path, 8000, fmt, KEY)
    feed(rec, 10.0)
    deadline = time.monotonic() + 5
    pcm = np.zeros((0, 2))
    while time.monotonic() < deadline:  # read it as a crash would leave it
        data, finished = recording_bytes(path, KEY)
        with contextlib.suppress(soundfile.LibsndfileError):  # only the headers so far
            pcm, _ = decode(data)
        if len(pcm) >= 7 * 8000:
            break
        time.sleep(0.05)
    assert not finished
    assert len(pcm) >= 7 * 8000  # at most a few seconds are not yet on disk
    rec.close()
    rec.join(5)


# -- records, purge and export -------------------------------------------------------------
def record_call(recorder: CallRecorder, directory: Path, call_id: str, agent_name: str,
                ended: float) -> Path:
    path = directory / f"{call_id}.wav"
    rec = CallRecording(path, 8000, "wav")
    feed(rec, 0.5)
    rec.close()
    rec.join(5)
    recorder.start_call(call_id, agent_name, "v", "inbound", "+1555", "100", ended - 60)
    recorder.add_recording(call_id, path.name, "wav", False, ended - 60)
    recorder.end_call(call_id, ended, "caller hangup")
    return path


def test_purging_records_deletes_their_recordings(tmp_path) -> None:
    directory = tmp_path / "recordings"
    recorder = CallRecorder(tmp_path / "calls.db", directory)
    now = time.time()
    old = record_call(recorder, directory, "old0000000000", "a", now - 10 * 86400)
    new = record_call(recorder, directory, "new0000000000", "a", now - 100)
    assert recorder.purge(5 * 86400, now) == 1
    assert not old.exists() and new.exists()
    recorder.close()
    with CallStore(tmp_path / "calls.db") as store:
        assert store.recording("new0000000000")["file"] == new.name
        with pytest.raises(KeyError):
            store.recording("old0000000000")


def test_an_agents_recording_retention_keeps_the_record(tmp_path) -> None:
    directory = tmp_path / "recordings"
    recorder = CallRecorder(tmp_path / "calls.db", directory)
    now = time.time()
    a = record_call(recorder, directory, "aaaa00000000", "a", now - 3 * 86400)
    b = record_call(recorder, directory, "bbbb00000000", "b", now - 3 * 86400)
    assert recorder.purge_recordings("a", 86400, now) == 1
    recorder.close()
    assert not a.exists() and b.exists()
    with CallStore(tmp_path / "calls.db") as store:
        assert store.transcript("aaaa00000000")["agent"] == "a"  # the record stays
        assert store.recording("aaaa00000000") is None
        place = RecordingPlace(directory, None)
        with pytest.raises(NoRecording):
            export(store, place, "aaaa00000000")
        full, data, finished = export(store, place, "bbbb00")
        assert full == "bbbb00000000" and finished and data == b.read_bytes()


# -- a whole call --------------------------------------------------------------------------
async def test_an_announced_call_is_recorded_with_the_notice_first(tmp_path) -> None:
    spec = agent("alpha", recording=RecordingSpec(mode="announce", notice="We record.",
                                                  format="flac"))
    directory = tmp_path / "recordings"
    async with Rig(spec, records_path=tmp_path / "calls.db", recordings_dir=directory,
                   recording_key=KEY) as rig:
        await rig.ring("a", "alpha")
        await rig.advance(0.4)
        call = rig.call("a")
        recording = call.recording
        await rig.say("a", 1.0)
        await rig.quiet("a", 1.5)
        sent = np.concatenate([f for _, f in rig.endpoint("a").sent])
        rig.ari.caller_hangs_up("a")
        await rig.settle()
        await rig.advance(0.1)
        recording.join(5)
    assert "We record." in rig.registry.engines["alpha"].phrases
    data, finished = recording_bytes(directory / f"{call.id}.flac.sealed", KEY)
    pcm, rate = decode(data)
    assert finished and rate == 8000
    right, left = pcm[:, 1], pcm[:, 0]
    assert np.array_equal(right[:len(sent)], sent)  # the agent's side is what was sent
    first = np.flatnonzero(right)[0]
    assert first < 0.1 * rate  # the notice, at once
    speech = np.flatnonzero(np.abs(left) > 100)
    assert len(speech) > 0.5 * rate  # the caller's second of speech
    with CallStore(tmp_path / "calls.db") as store:
        assert store.recording(call.id)["sealed"]


def test_index_lookup_on_a_database_without_the_table(tmp_path) -> None:
    import sqlite3

    conn = sqlite3.connect(tmp_path / "x.db")
    assert index.lookup(conn, "x") is None
    conn.close()


# -- the configuration ---------------------------------------------------------------------
def test_check_refuses_a_loose_key_and_the_agent_policy_reaches_the_daemon(tmp_path) -> None:
    from appliance.bench.sandbox import write_test_config
    from appliance.config.base import ConfigError
    from appliance.config.load import load_configuration
    from appliance.daemon_settings import agent_spec, recording_key, recordings_dir

    config = write_test_config(tmp_path / "config")
    key = config / "rec.key"
    key.write_text(new_key() + "\n")
    key.chmod(0o644)
    site = config / "switchboard.yaml"
    site.write_text(site.read_text().replace(
        "daemon:\n", "daemon:\n  recordings:\n    key_file: rec.key\n", 1))
    agent_file = config / "agents" / "demo.yaml"
    agent_file.write_text(agent_file.read_text() + "recording:\n  mode: announce\n"
                          "  format: flac\n  retention_days: 7\n")
    with pytest.raises(ConfigError) as err:
        load_configuration(config)
    assert any("recordings.key_file" in str(i) and "chmod 600" in str(i)
               for i in err.value.errors), err.value.errors
    key.chmod(0o600)
    cfg = load_configuration(config)
    assert recording_key(cfg) == read_key(key)
    assert recordings_dir(cfg, tmp_path / "data") == tmp_path / "data" / "recordings"
    spec = agent_spec(cfg.agents["demo"], None, config)
    assert spec.recording == RecordingSpec(mode="announce", format="flac", retention_days=7)
    assert "This call is recorded." in spec.phrases()


def test_new_key_is_private_and_never_overwrites(tmp_path, capsys) -> None:
    from appliance.cli import main

    path = tmp_path / "rec.key"
    assert main(["recording", "--new-key", str(path)]) == 0
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(read_key(path)) == 32
    before = path.read_text()
    assert main(["recording", "--new-key", str(path)]) == 1
    assert path.read_text() == before
    assert "exists" in capsys.readouterr().err
