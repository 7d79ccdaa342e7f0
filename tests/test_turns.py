"""Turn-taking: the end-of-turn state machine, voice activity and utterance collection."""

from __future__ import annotations

import numpy as np
import pytest

from agent.speech.turns import (
    SampleRing,
    SpeechStarted,
    TurnDetector,
    TurnEnded,
    TurnSettings,
    TurnTaker,
    Utterance,
    VoiceActivity,
)

FRAME = 0.02

HALF = TurnSettings(end_silence=0.5)  # the timings below were worked out for 0.5 s


def feed(detector: TurnDetector, pattern: list[tuple[bool, float]],
         frame: float = FRAME) -> list[SpeechStarted | TurnEnded]:
    """Feed (is_speech, seconds) runs as ``frame``-long frames."""
    events = []
    for is_speech, seconds in pattern:
        for _ in range(round(seconds / frame)):
            events += detector.feed(frame, is_speech)
    return events


SPEECH, SILENCE = True, False


# --- TurnDetector -------------------------------------------------------------------------

def test_blip_below_min_speech_is_ignored() -> None:
    detector = TurnDetector(HALF)
    events = feed(detector, [(SILENCE, 0.5), (SPEECH, 0.1), (SILENCE, 2.0)])
    assert events == []
    assert not detector.speaking
    assert detector.time == pytest.approx(2.6)


def test_normal_utterance() -> None:
    detector = TurnDetector(HALF)
    events = feed(detector, [(SILENCE, 0.5), (SPEECH, 1.0), (SILENCE, 1.0)])
    assert len(events) == 2
    started, ended = events
    assert isinstance(started, SpeechStarted)
    assert started.start == pytest.approx(0.5)  # when speech really began
    assert started.at == pytest.approx(0.66)  # confirmed after 8 voiced frames >= 0.15 s
    assert isinstance(ended, TurnEnded)
    assert ended.reason == "silence"
    assert ended.start == pytest.approx(0.5)
    assert ended.end == pytest.approx(1.5)
    assert ended.at == pytest.approx(2.0)  # 0.5 s of silence after the speech
    assert ended.speech_seconds == pytest.approx(1.0)


def test_speech_exactly_min_speech_starts() -> None:
    detector = TurnDetector(TurnSettings(end_silence=0.5, min_speech=0.15))
    events = feed(detector, [(SPEECH, 0.15), (SILENCE, 1.0)], frame=0.01)
    assert [type(e) for e in events] == [SpeechStarted, TurnEnded]
    assert events[0].at == pytest.approx(0.15)


def test_gap_inside_speech_is_one_utterance() -> None:
    detector = TurnDetector(HALF)
    events = feed(detector, [(SPEECH, 0.5), (SILENCE, 0.48), (SPEECH, 0.5), (SILENCE, 0.6)])
    assert [type(e) for e in events] == [SpeechStarted, TurnEnded]
    assert events[1].speech_seconds == pytest.approx(1.48)
    assert events[1].at == pytest.approx(1.98)


def test_gap_of_end_silence_splits_turns() -> None:
    detector = TurnDetector(HALF)
    events = feed(detector, [(SPEECH, 0.5), (SILENCE, 0.5), (SPEECH, 0.5), (SILENCE, 0.5)])
    assert [type(e) for e in events] == [SpeechStarted, TurnEnded, SpeechStarted, TurnEnded]
    assert events[1].at == pytest.approx(1.0)
    assert events[2].start == pytest.approx(1.0)


def test_start_tolerates_vad_flicker() -> None:
    """Voiced frames broken by gaps shorter than min_speech still add up (hysteresis)."""
    detector = TurnDetector(HALF)
    pattern = [(SPEECH, 0.06), (SILENCE, 0.04)] * 2 + [(SPEECH, 0.06)]
    events = feed(detector, pattern)
    assert len(events) == 1
    assert isinstance(events[0], SpeechStarted)
    assert events[0].start == 0.0
    assert events[0].at == pytest.approx(0.24)  # 0.06 + 0.06 + 0.04 voiced


def test_separated_blips_do_not_add_up() -> None:
    detector = TurnDetector(HALF)
    events = feed(detector, [(SPEECH, 0.1), (SILENCE, 0.16), (SPEECH, 0.1), (SILENCE, 1.0)])
    assert events == []


def test_short_pause_does_not_end_but_resets_the_silence_count() -> None:
    detector = TurnDetector(HALF)
    pattern = [(SPEECH, 0.3)] + [(SILENCE, 0.4), (SPEECH, 0.04)] * 5 + [(SILENCE, 0.5)]
    events = feed(detector, pattern)
    assert [type(e) for e in events] == [SpeechStarted, TurnEnded]
    assert events[1].end == pytest.approx(0.3 + 5 * 0.44)


def test_max_utterance_forces_end_and_speech_goes_on() -> None:
    detector = TurnDetector(TurnSettings(end_silence=0.5, max_utterance=15.0))
    events = feed(detector, [(SILENCE, 1.0), (SPEECH, 20.0), (SILENCE, 0.6)])
    assert [type(e) for e in events] == [SpeechStarted, TurnEnded, SpeechStarted, TurnEnded]
    forced = events[1]
    assert forced.reason == "max_utterance"
    assert forced.at == pytest.approx(16.0)
    assert forced.end == pytest.approx(16.0)
    assert forced.speech_seconds == pytest.approx(15.0)
    again = events[2]
    assert again.start == pytest.approx(16.0)
    assert again.audio_start == pytest.approx(16.0)  # pre-roll stops at the cut
    assert events[3].reason == "silence"
    assert events[3].speech_seconds == pytest.approx(5.0)


def test_max_utterance_counts_pauses_too() -> None:
    detector = TurnDetector(TurnSettings(end_silence=0.5, max_utterance=2.0))
    events = feed(detector, [(SPEECH, 1.0), (SILENCE, 0.4), (SPEECH, 0.4), (SILENCE, 0.4)])
    assert [type(e) for e in events] == [SpeechStarted, TurnEnded]
    assert events[1].reason == "max_utterance"
    assert events[1].at == pytest.approx(2.0)
    assert events[1].end == pytest.approx(1.8)  # the last voiced audio, not the cut


def test_pre_roll_length() -> None:
    detector = TurnDetector(TurnSettings(end_silence=0.5, pre_roll=0.3))
    events = feed(detector, [(SILENCE, 2.0), (SPEECH, 1.0), (SILENCE, 0.5)])
    assert events[0].audio_start == pytest.approx(1.7)
    assert events[1].audio_start == pytest.approx(1.7)
    assert events[1].start - events[1].audio_start == pytest.approx(0.3)


def test_pre_roll_is_clipped_at_stream_start() -> None:
    detector = TurnDetector(TurnSettings(end_silence=0.5, pre_roll=0.3))
    events = feed(detector, [(SILENCE, 0.1), (SPEECH, 0.5)])
    assert events[0].audio_start == 0.0


def test_pre_roll_never_reaches_into_previous_speech() -> None:
    detector = TurnDetector(TurnSettings(pre_roll=0.3, end_silence=0.2))
    events = feed(detector, [(SPEECH, 0.5), (SILENCE, 0.2), (SPEECH, 0.5), (SILENCE, 0.2)])
    second = events[2]
    assert second.start == pytest.approx(0.7)
    assert second.audio_start == pytest.approx(0.5)  # not 0.4: that was the first turn


def test_reset_drops_turn_in_progress() -> None:
    detector = TurnDetector(HALF)
    events = feed(detector, [(SPEECH, 0.5)])
    assert [type(e) for e in events] == [SpeechStarted]
    detector.reset()
    assert not detector.speaking
    assert feed(detector, [(SILENCE, 2.0)]) == []
    assert detector.time == pytest.approx(2.5)  # the time axis carries on
    events = feed(detector, [(SPEECH, 0.5), (SILENCE, 0.5)])
    assert events[0].start == pytest.approx(2.5)


def test_reset_during_pending_speech() -> None:
    detector = TurnDetector(HALF)
    feed(detector, [(SPEECH, 0.1)])
    detector.reset()
    assert feed(detector, [(SPEECH, 0.1), (SILENCE, 1.0)]) == []


def test_end_silence_setting_is_respected_and_changeable() -> None:
    detector = TurnDetector(TurnSettings(end_silence=1.0))
    assert [type(e) for e in feed(detector, [(SPEECH, 0.5), (SILENCE, 0.9)])] == [SpeechStarted]
    events = feed(detector, [(SILENCE, 0.1)])
    assert [type(e) for e in events] == [TurnEnded]
    detector.settings = TurnSettings(end_silence=0.3)
    events = feed(detector, [(SPEECH, 0.5), (SILENCE, 0.3)])
    assert [type(e) for e in events] == [SpeechStarted, TurnEnded]


def test_uneven_frame_sizes() -> None:
    detector = TurnDetector(HALF)
    events = []
    for seconds, voiced in [(0.2, False), (0.03, True), (0.01, True), (0.12, True),
                            (0.25, True), (0.3, False), (0.21, False)]:
        events += detector.feed(seconds, voiced)
    assert [type(e) for e in events] == [SpeechStarted, TurnEnded]
    assert events[0].start == pytest.approx(0.2)
    assert events[0].at == pytest.approx(0.36)
    assert events[1].at == pytest.approx(1.12)
    assert events[1].speech_seconds == pytest.approx(0.41)


def test_settings_validation() -> None:
    with pytest.raises(ValueError):
        TurnSettings(end_silence=0)
    with pytest.raises(ValueError):
        TurnSettings(pre_roll=-0.1)
    with pytest.raises(ValueError):
        TurnDetector().feed(-0.02, True)


# --- synthesized audio --------------------------------------------------------------------

RATE = 8000


def speech_like(seconds: float, f0: float = 140.0, level: float = 0.3) -> np.ndarray:
    """Voiced-speech stand-in: harmonics of a wavering pitch under three formant peaks,
    with a 4 Hz syllable rhythm."""
    t = np.arange(int(RATE * seconds)) / RATE
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))) / RATE
    signal = np.zeros_like(t)
    for k in range(1, int(3800 // f0) + 1):
        amp = 0.05 + sum(np.exp(-(((k * f0) - formant) / width) ** 2)
                         for formant, width in ((700, 150), (1200, 200), (2500, 300)))
        signal += amp * np.sin(k * phase)
    signal *= 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    return np.round(signal / np.abs(signal).max() * level * 32767).astype(np.int16)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(RATE * seconds), dtype=np.int16)


def low_noise(seconds: float, rms: float = 30.0, seed: int = 3) -> np.ndarray:
    """White noise around -61 dBFS: line hiss, below the energy floor."""
    rng = np.random.default_rng(seed)
    return np.round(rng.standard_normal(int(RATE * seconds)) * rms).astype(np.int16)


def test_voice_activity_on_synthesized_audio() -> None:
    vad = VoiceActivity(RATE)
    assert vad.frame_samples == 160
    voiced = vad.process(speech_like(1.0))
    assert len(voiced) == 50
    assert sum(voiced) >= 45
    assert vad.process(silence(1.0)) == [False] * 50
    assert vad.process(low_noise(2.0)) == [False] * 100


def test_voice_activity_reframes_arbitrary_chunks() -> None:
    audio = np.concatenate([silence(0.3), speech_like(0.5), low_noise(0.3)])
    whole = VoiceActivity(RATE).process(audio)
    vad = VoiceActivity(RATE)
    pieces: list[bool] = []
    for start in range(0, len(audio), 77):
        pieces += vad.process(audio[start:start + 77])
    assert pieces == whole
    assert len(whole) == len(audio) // 160


def test_voice_activity_holds_partial_frame() -> None:
    vad = VoiceActivity(RATE)
    assert vad.process(silence(0.015)) == []
    assert vad.process(silence(0.005)) == [False]


def test_voice_activity_validation() -> None:
    with pytest.raises(ValueError):
        VoiceActivity(22050)
    with pytest.raises(ValueError):
        VoiceActivity(8000, frame_ms=25)
    with pytest.raises(TypeError):
        VoiceActivity(8000).process(np.zeros(160, dtype=np.float32))


def test_voice_activity_at_16k() -> None:
    vad = VoiceActivity(16000)
    t = np.arange(16000) / 16000
    tone_mix = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((150, 300, 450, 700), 1))
    pcm = np.round(tone_mix / np.abs(tone_mix).max() * 10000).astype(np.int16)
    assert vad.frame_samples == 320
    assert len(vad.process(pcm)) == 50
    assert vad.process(np.zeros(16000, dtype=np.int16)) == [False] * 50


def test_turn_taker_collects_the_utterance_with_pre_roll() -> None:
    taker = TurnTaker(RATE, HALF)
    speech = speech_like(1.0)
    audio = np.concatenate([low_noise(1.0), speech, silence(1.0)])
    events: list[SpeechStarted | Utterance] = []
    for start in range(0, len(audio), 160):  # 20 ms packets, as they come off RTP
        events += taker.feed(audio[start:start + 160])
    assert [type(e) for e in events] == [SpeechStarted, Utterance]
    started, utterance = events
    assert started.start == pytest.approx(1.0, abs=0.04)
    turn = utterance.turn
    assert turn.reason == "silence"
    assert turn.speech_seconds == pytest.approx(1.0, abs=0.1)
    assert utterance.audio.rate == RATE
    pcm = utterance.audio.pcm
    # pre-roll (0.3 s) + speech (~1 s) + trailing silence trimmed to 0.1 s
    assert utterance.audio.seconds == pytest.approx(0.3 + turn.speech_seconds + 0.1, abs=0.001)
    pre_roll = int((turn.start - turn.audio_start) * RATE)
    assert pre_roll == 2400
    assert np.abs(pcm[:pre_roll - 320]).max() < 200  # the noise before speech
    offset = pre_roll - int((turn.start - 1.0) * RATE)  # where the real speech starts
    np.testing.assert_array_equal(pcm[offset:offset + 4000], speech[:4000])
    assert np.abs(pcm[-400:]).max() == 0  # tail is the silence after speech


def test_turn_taker_ignores_a_click_and_finds_two_turns() -> None:
    taker = TurnTaker(RATE, TurnSettings(end_silence=0.4))
    click = speech_like(0.06)
    audio = np.concatenate([silence(0.5), click, silence(0.5), speech_like(0.6), silence(0.6),
                            speech_like(0.8, f0=210), silence(0.6)])
    events = taker.feed(audio)
    utterances = [e for e in events if isinstance(e, Utterance)]
    assert len(utterances) == 2
    assert utterances[0].audio.seconds == pytest.approx(1.0, abs=0.1)
    assert utterances[1].audio.seconds == pytest.approx(1.2, abs=0.1)
    assert utterances[1].turn.start == pytest.approx(2.3, abs=0.05)


def test_turn_taker_reset_and_end_silence() -> None:
    taker = TurnTaker(RATE, TurnSettings(end_silence=1.0))
    assert taker.settings.end_silence == 1.0
    events = taker.feed(np.concatenate([speech_like(0.5), silence(0.8)]))
    assert [type(e) for e in events] == [SpeechStarted]
    taker.reset()
    assert taker.feed(silence(2.0)) == []


def test_turn_taker_long_utterance_is_cut_with_its_audio() -> None:
    taker = TurnTaker(RATE, TurnSettings(end_silence=0.5, max_utterance=3.0))
    events = taker.feed(np.concatenate([silence(0.5), speech_like(4.0), silence(0.6)]))
    utterances = [e for e in events if isinstance(e, Utterance)]
    assert utterances[0].turn.reason == "max_utterance"
    assert utterances[0].audio.seconds == pytest.approx(3.3, abs=0.05)
    total = sum(u.audio.seconds for u in utterances)
    assert total == pytest.approx(0.3 + 4.0 + 0.1, abs=0.1)  # nothing lost or doubled at the cut


def test_sample_ring_wraps_and_resizes() -> None:
    ring = SampleRing(10)
    ring.append(np.arange(7, dtype=np.int16))
    ring.append(np.arange(7, 15, dtype=np.int16))
    assert ring.total == 15
    np.testing.assert_array_equal(ring.slice(0, 15), np.arange(5, 15))
    np.testing.assert_array_equal(ring.slice(8, 12), np.arange(8, 12))
    ring.append(np.arange(15, 40, dtype=np.int16))  # longer than the ring
    np.testing.assert_array_equal(ring.slice(0, 100), np.arange(30, 40))
    ring.resize(20)
    ring.append(np.arange(40, 45, dtype=np.int16))
    np.testing.assert_array_equal(ring.slice(0, 100), np.arange(30, 45))
    assert len(ring.slice(50, 60)) == 0
