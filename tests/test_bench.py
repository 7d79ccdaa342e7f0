"""``switchboard bench``: the measurements on synthetic packet timelines, and one real run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from appliance.bench.bench import parse_concurrency
from appliance.bench.report import build_results, format_report, level_result
from appliance.bench.targets import MemorySampler, read_memory, sandbox_site_yaml
from appliance.bench.timeline import (
    CallRun,
    Stalls,
    TurnMark,
    answer_gaps,
    barge_in_cutoff,
    caller_speech,
    caller_stalls,
    pacing,
    percentile,
    span_pacing,
    summarize,
    trim_silence,
    voice_to_voice,
)
from appliance.sipphone import ReceivedPacket, SentPacket

REPO = Path(__file__).resolve().parents[1]
TONE = (4000 * np.sin(2 * np.pi * 440 * np.arange(160) / 8000)).astype(np.int16)
QUIET = np.zeros(160, np.int16)


def timeline(start: float, end: float, loud: list[tuple[float, float]], seq: int = 0,
             ts: int = 0) -> list[ReceivedPacket]:
    """Agent packets every 20 ms in [start, end); voiced inside the ``loud`` intervals."""
    out = []
    for i in range(round((end - start) / 0.02)):
        t = start + i * 0.02
        pcm = TONE if any(a <= t < b for a, b in loud) else QUIET
        out.append(ReceivedPacket(t, (seq + i) & 0xFFFF, (ts + 160 * i) & 0xFFFFFFFF, pcm))
    return out


def sent(start: float, end: float, loud: tuple[float, float]) -> list[SentPacket]:
    """Caller packets every 20 ms; voiced (and queued) inside ``loud``."""
    out = []
    for i in range(round((end - start) / 0.02)):
        t = start + i * 0.02
        speaking = loud[0] <= t < loud[1]
        out.append(SentPacket(t, i, 160 * i, speaking, speaking))
    return out


# -- latency ---------------------------------------------------------------------------

def test_caller_speech_ignores_comfort_silence() -> None:
    packets = sent(0.0, 3.0, (0.5, 2.0))
    first, last = caller_speech(packets)
    assert first == pytest.approx(0.5)
    assert last == pytest.approx(1.98)
    assert caller_speech(sent(0.0, 1.0, (5.0, 6.0))) is None


def test_voice_to_voice_is_last_caller_packet_to_first_voiced_agent_packet() -> None:
    received = timeline(0.0, 5.0, [(0.2, 0.8), (2.7, 4.0)])  # greeting, then the answer
    assert voice_to_voice(1.98, received) == pytest.approx(0.72)
    assert voice_to_voice(1.98, received, until=2.5) is None  # answer after the window


# -- barge-in --------------------------------------------------------------------------

def test_cutoff_is_end_of_agent_audio_after_the_interruption() -> None:
    received = timeline(0.0, 6.0, [(1.0, 2.5)])  # the agent stops at 2.5
    assert barge_in_cutoff(received, 1.0, 2.0) == pytest.approx(0.5)


def test_cutoff_spans_short_pauses_in_the_answer() -> None:
    received = timeline(0.0, 6.0, [(1.0, 1.9), (2.1, 3.0)])  # 0.2 s pause between words
    assert barge_in_cutoff(received, 1.0, 1.5) == pytest.approx(1.5)


def test_cutoff_not_measurable_when_the_agent_was_quiet() -> None:
    received = timeline(0.0, 6.0, [(1.0, 1.6)])
    assert barge_in_cutoff(received, 1.0, 2.5) is None


# -- pacing ----------------------------------------------------------------------------

def test_perfect_pacing_has_no_deviation_or_underrun() -> None:
    result = span_pacing(timeline(10.0, 11.0, [(10.0, 11.0)]))
    assert max(result.deviations_ms) == pytest.approx(0.0, abs=1e-6)
    assert (result.underruns, result.lost, result.packets) == (0, 0, 50)


def test_constant_offset_is_removed_and_a_late_packet_shows() -> None:
    packets = timeline(10.0, 11.0, [(10.0, 11.0)])
    packets = [p._replace(arrival=p.arrival + 0.004) for p in packets]  # uniform latency
    packets[20] = packets[20]._replace(arrival=packets[20].arrival + 0.008)
    result = span_pacing(packets)
    assert max(result.deviations_ms) == pytest.approx(8.0, abs=0.01)
    assert sorted(result.deviations_ms)[-2] == pytest.approx(0.0, abs=1e-6)
    assert result.underruns == 0


def test_arrival_gap_and_timestamp_jump_are_underruns() -> None:
    packets = timeline(10.0, 11.0, [(10.0, 11.0)])
    # packets 10.. arrive 40 ms late, then 11 catches up: one arrival gap of 60 ms
    packets[10] = packets[10]._replace(arrival=packets[10].arrival + 0.040)
    # a 480-sample jump in the timestamps from packet 30 on (audio skipped)
    packets[30:] = [p._replace(timestamp=p.timestamp + 480) for p in packets[30:]]
    result = span_pacing(packets)
    assert (result.arrival_gaps, result.ts_gaps, result.underruns) == (1, 1, 2)


def test_arrival_gaps_while_the_caller_stalled_are_not_underruns() -> None:
    packets = timeline(10.0, 11.0, [(10.0, 11.0)])
    packets[10] = packets[10]._replace(arrival=packets[10].arrival + 0.040)
    outgoing = sent(10.0, 11.0, (0.0, 0.0))
    outgoing = outgoing[:9] + [p._replace(sent_at=p.sent_at + 0.035) for p in outgoing[9:11]] \
        + outgoing[11:]  # the caller's loop was late around 10.2 s as well
    stalls = caller_stalls(outgoing)
    assert stalls == [(pytest.approx(10.16), pytest.approx(10.215))]
    result = span_pacing(packets, stalls=Stalls(caller=stalls))
    assert (result.arrival_gaps, result.caller_busy_gaps, result.underruns) == (1, 1, 0)


def test_arrival_gaps_are_placed_on_the_machine_or_the_daemon() -> None:
    packets = timeline(10.0, 11.0, [(10.0, 11.0)])
    for late in (10, 20, 30):  # three gaps of 60 ms before packets 10, 20 and 30
        packets[late] = packets[late]._replace(arrival=packets[late].arrival + 0.040)
    machine = [(10.17, 10.205)]  # the probe did not run around the first
    daemon = [(10.17, 10.205), (10.365, 10.40)]  # the daemon's sender was late at both
    result = span_pacing(packets, stalls=Stalls(machine=machine, daemon=daemon))
    assert (result.arrival_gaps, result.underruns) == (3, 3)  # still underruns, all three
    assert (result.machine_gaps, result.daemon_gaps) == (1, 1)  # the third: on the way
    # a real-time probe stalled: the host took the machine, the phone's receiver with it
    hosted = span_pacing(packets, stalls=Stalls(machine=machine, daemon=daemon, host=True))
    assert (hosted.machine_gaps, hosted.daemon_gaps, hosted.underruns) == (1, 1, 2)


def test_gaps_on_the_way_are_asterisks_when_the_kernel_stamped_arrivals() -> None:
    from appliance.bench.report import _placed

    level = {"arrival_gaps": 3, "arrival_gaps_caller_busy": 0, "arrival_gaps_machine": 1,
             "arrival_gaps_daemon": 0, "machine_stalls": 1, "ts_gaps": 0,
             "machine_stalls_are_the_hosts": True}
    assert "2 on the way (Asterisk or the phone's receiver)" in _placed(level)
    assert "2 on the way (Asterisk)," in _placed({**level, "arrivals_stamped": True})


def test_timestamps_wrap_around() -> None:
    packets = timeline(0.0, 0.4, [(0.0, 0.4)], seq=65530, ts=2**32 - 480)
    result = span_pacing(packets)
    assert max(result.deviations_ms) == pytest.approx(0.0, abs=1e-6)
    assert (result.underruns, result.lost) == (0, 0)


def test_lost_packets_counted_from_sequence_gaps() -> None:
    packets = timeline(0.0, 1.0, [(0.0, 1.0)])
    del packets[10:13]
    result = span_pacing(packets)
    assert result.lost == 3
    assert result.ts_gaps == 1 and result.arrival_gaps == 1


def test_pacing_only_looks_inside_the_spans() -> None:
    packets = timeline(0.0, 2.0, [(0.5, 1.0)])
    packets[5] = packets[5]._replace(arrival=packets[5].arrival + 0.2)  # outside the span
    result = pacing(packets, [(0.5, 1.0)])
    assert result.packets == 26  # 0.50 .. 1.00 inclusive
    assert result.underruns == 0


def test_long_silences_inside_an_answer_are_stalls() -> None:
    received = timeline(0.0, 6.0, [(1.0, 2.0), (2.3, 3.0), (3.9, 4.5)])
    gaps = answer_gaps(received, 0.5, 5.0)
    assert gaps == [pytest.approx(0.9)]  # the 0.3 s pause is speech, the 0.9 s one is not


# -- summaries, report and JSON --------------------------------------------------------

def test_summary_percentiles() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == pytest.approx(50.5)
    s = summarize(values, (50, 95))
    assert s == {"n": 100, "p50": 50.5, "p95": 95.0, "min": 1.0, "max": 100.0}
    assert summarize([], (50, 99)) == {"n": 0, "p50": None, "p99": None, "min": None,
                                       "max": None}


def test_trim_silence_keeps_the_voiced_part() -> None:
    pcm = np.concatenate([QUIET, QUIET, TONE, QUIET, TONE, QUIET, QUIET[:50]])
    trimmed = trim_silence(pcm)
    assert len(trimmed) == 3 * 160
    assert np.array_equal(trimmed[:160], TONE)


def test_parse_concurrency() -> None:
    assert parse_concurrency("1,2, 4") == (1, 2, 4)
    for bad in ("", "0", "1,x"):
        with pytest.raises(ValueError):
            parse_concurrency(bad)


def fake_run(index: int) -> CallRun:
    """A call with one question (v2v 700 ms) and a barge-in turn (cut-off 300 ms)."""
    received = timeline(0.0, 12.0, [(0.2, 1.0), (3.7, 5.0), (8.2, 9.5)], seq=index * 1000)
    outgoing = sent(1.0, 12.0, (1.5, 3.0))
    marks = [TurnMark("question", "Q1?", 1.5, 3.0, ended=6.5),
             TurnMark("barge-in", "Q2?", 6.5, 7.5, ended=10.0, answer_start=8.2,
                      interrupt_at=9.2)]
    dialog = SimpleNamespace(received_packets=received, sent_packets=outgoing,
                             stats={"rtp_tx_late": 0})
    return CallRun(index, invite_at=-0.1 + index * 0.01, dialog=dialog, answered_at=0.0,
                   greeting_at=0.2, marks=marks)


SUMMARY = {"id": "abc", "agent": "demo", "end_reason": "caller hangup", "barge_ins": 1,
           "turns": [{"index": 1, "timings_ms": {
               "speech_end": 0.0, "turn_detected": 460.0, "stt_done": 600.0,
               "llm_first_token": 700.0, "first_clause": 900.0, "tts_first_audio": 1050.0,
               "first_audio_out": 1060.0}}],
           "playout": {"frames": 100, "restarts": 0, "lateness_p99_ms": 1.5,
                       "lateness_max_ms": 42.0}}


def test_level_result_and_json_shape(tmp_path: Path) -> None:
    level = level_result(2, [fake_run(0), fake_run(1)], [SUMMARY, SUMMARY])
    assert level["calls_placed"] == 2 and level["turns"] == 4
    assert level["v2v_ms"]["p50"] == pytest.approx(700.0, abs=1)
    assert level["barge_in_cutoff_ms"]["p50"] == pytest.approx(300.0, abs=1)
    assert level["barge_in_cutoff_ms"]["not_measurable"] == 0
    assert level["start_spread_ms"] == pytest.approx(10.0)
    assert level["answer_ms"]["max"] == pytest.approx(100.0)
    assert level["greeting_ms"]["p50"] == pytest.approx(200.0)
    assert level["underruns"] == 0 and level["stalls"] == 0
    assert level["stages_ms"]["stt_done"]["p50"] == 600.0
    assert level["stages_ms"]["first_audio_out"]["n"] == 2
    assert level["daemon"]["first_audio"] == {"synthesized": 2, "cached": 0}
    assert level["daemon"]["playout_lateness_max_ms"]["max"] == 42.0
    # "I don't know" from the phrase cache after a refused clause: no voice stage
    cached = {**SUMMARY, "turns": [{"index": 1, "timings_ms": {
        k: v for k, v in SUMMARY["turns"][0]["timings_ms"].items() if k != "tts_first_audio"}}]}
    mixed = level_result(2, [fake_run(0), fake_run(1)], [SUMMARY, cached])
    assert mixed["daemon"]["first_audio"] == {"synthesized": 1, "cached": 1}

    target = SimpleNamespace(mode="sandbox", models={"stt": "a", "llm": "b", "tts": "c"},
                             notes=["a note"])
    memory = {"daemon": {"pid": 1, "vmhwm_mb": 500.0, "peak_rss_mb": 490.0,
                         "peak_rss_mb_by_level": {"c=2": 490.0}}}
    results = build_results(target, [level], memory, {"turns": 1})
    data = json.loads(json.dumps(results))
    assert {"version", "date", "machine", "models", "settings", "levels", "memory",
            "notes"} <= set(data)
    assert {"cores", "cpu_model", "python"} <= set(data["machine"])
    turn = data["levels"][0]["samples"]["turns"][0]
    assert {"call", "turn", "kind", "prompt", "v2v_ms", "stalls_ms"} <= set(turn)

    report = format_report(data)
    assert "700" in report and "first_audio_out" in report and "a note" in report

    from appliance.bench.plot import plot

    plot(data, tmp_path / "bench.png")
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stage_bands_follow_the_medians() -> None:
    from appliance.bench.plot import stage_increments

    stages = {"turn_detected": {"p50": 460.0}, "stt_done": {"p50": 260.0},
              "llm_first_token": {"p50": None}, "first_audio_out": {"p50": 700.0}}
    bands = stage_increments(stages)
    assert [label for label, _ in bands] == ["speech-to-text", "turn detection",
                                             "playout start"]
    assert [v for _, v in bands] == [260.0, 200.0, 240.0]


def test_unanswered_turn_and_unmeasurable_barge_in() -> None:
    run = fake_run(0)
    run.dialog.received_packets = timeline(0.0, 12.0, [(0.2, 1.0)])  # only the greeting
    run.marks[1].barge_note = "no answer"
    level = level_result(1, [run], None)
    assert level["turns_unanswered"] == 2 and level["v2v_ms"]["n"] == 0
    assert level["barge_in_cutoff_ms"]["not_measurable"] == 1
    assert "stages_ms" not in level


def test_failed_call_is_counted_not_analysed() -> None:
    level = level_result(1, [CallRun(0, invite_at=1.0, error="SipError: 403")], None)
    assert level["calls_placed"] == 0 and level["call_errors"] == ["SipError: 403"]


def test_memory_of_this_process() -> None:
    import os

    assert read_memory(os.getpid())["VmRSS"] > 0
    with MemorySampler({"me": os.getpid()}, interval=0.01) as sampler:
        sampler.label = "work"
        _ = np.ones(5_000_000)
    report = sampler.report()["me"]
    assert report["vmhwm_mb"] >= report["peak_rss_mb"] > 0
    assert read_memory(2**22 + 12345) == {}


def test_sandbox_config_is_shifted_and_valid(tmp_path: Path) -> None:
    from appliance.bench.sandbox import SIP_PORT, write_test_config
    from appliance.config.load import load_configuration

    config = write_test_config(tmp_path / "config")
    site = config / "switchboard.yaml"
    site.write_text(sandbox_site_yaml(site.read_text(), port_offset=-12000, max_calls=16))
    cfg = load_configuration(config)
    assert cfg.site.network.sip_port == SIP_PORT - 12000
    assert cfg.site.daemon.max_concurrent_calls == 16
    assert not cfg.site.trunks
    assert all(rule.extension for rule in cfg.site.routes.rules)


def test_sandbox_ports_are_free_locked_and_apart() -> None:
    import socket

    from appliance.bench.ports import PORT_BLOCK, reserve_ports

    held: list[int] = []
    pool = range(26000, 28000)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        first = reserve_ports([1], held, pool)[0]
        busy.bind(("127.0.0.1", first.stop + 5))  # the next block has a port in use
        second, third = reserve_ports([1, 2], held, pool)
    try:
        assert len(first) == len(second) == PORT_BLOCK and len(third) == 2 * PORT_BLOCK
        assert first.stop + 5 not in second and first.stop + 5 not in third
        taken = [*first, *second, *third]
        assert len(set(taken)) == len(taken)  # no port handed out twice
    finally:
        for fd in held:
            os.close(fd)
    again: list[int] = []
    assert reserve_ports([1], again, first) == [first]  # free again once the locks are closed
    os.close(again[0])


# -- one real run ----------------------------------------------------------------------

@pytest.mark.asterisk
def test_bench_in_a_sandbox(tmp_path: Path) -> None:
    """One call, one question and the barge-in turn through a throwaway appliance."""
    out = tmp_path / "bench.json"
    png = tmp_path / "bench.png"
    # The bench process reserves its own free ports, apart from this session's sandbox.
    cmd = [sys.executable, "-m", "appliance.cli", "bench", "--sandbox", "--concurrency", "1",
           "--turns", "1", "--no-warm-up",
           "--workdir", str(tmp_path / "work"),
           "--json", str(out), "--plot", str(png)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=170)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    level = data["levels"][0]
    assert level["calls_placed"] == 1
    assert isinstance(level["v2v_ms"]["p50"], float) and level["v2v_ms"]["p50"] > 0
    assert isinstance(level["stages_ms"]["stt_done"]["p50"], float)
    assert data["memory"]["daemon"]["vmhwm_mb"] > 0
    assert png.stat().st_size > 1000
    assert "v2v p50" in proc.stdout


def test_a_terminated_bench_unwinds_and_stops_its_sandbox(tmp_path: Path) -> None:
    """SIGTERM used to kill the bench where it stood, leaving the sandbox's daemon, Asterisk
    and probe running: now the way out runs (here a marker stands for the sandbox)."""
    import subprocess
    import sys

    marker = tmp_path / "stopped"
    script = ("import os, signal, time\n"
              "from appliance.bench.sandbox import terminated_as_exit\n"
              "with terminated_as_exit():\n"
              "    try:\n"
              "        os.kill(os.getpid(), signal.SIGTERM)\n"
              "        time.sleep(5)\n"
              "    finally:\n"
              f"        open({str(marker)!r}, 'w').close()\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, timeout=30)
    assert done.returncode == 128 + 15 and marker.exists()
