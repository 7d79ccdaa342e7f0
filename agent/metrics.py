"""Prometheus metrics and a status document, served on loopback by the daemon.

Numbers only: no transcripts, digits or caller numbers ever become a label or a value.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from agent.timings import LATENCY_STAGES

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0)


class Metrics:
    """All of the daemon's metric families in one registry."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.calls_active = Gauge("switchboard_calls_active", "Calls in progress.", registry=r)
        self.calls_total = Counter("switchboard_calls_total", "Finished calls by outcome.",
                                   ["outcome"], registry=r)
        self.stage_latency = Histogram(
            "switchboard_stage_latency_seconds",
            "Time from the end of the caller's speech to each stage of the reply.", ["stage"],
            buckets=LATENCY_BUCKETS, registry=r)
        self.voice_to_voice = Histogram(
            "switchboard_voice_to_voice_seconds",
            "End of caller speech to the first answer packet sent (daemon side).",
            buckets=LATENCY_BUCKETS, registry=r)
        self.barge_ins = Counter("switchboard_barge_ins_total", "Caller interruptions.",
                                 registry=r)
        self.tool_calls = Counter("switchboard_tool_calls_total", "Tool calls by outcome.",
                                  ["tool", "outcome"], registry=r)
        self.tool_failures = Counter("switchboard_tool_failures_total",
                                     "Tool calls that failed (the caller heard the failure "
                                     "phrase).", ["tool"], registry=r)
        self.rtp_received = Counter("switchboard_rtp_packets_received_total",
                                    "RTP packets received from Asterisk.", registry=r)
        self.rtp_sent = Counter("switchboard_rtp_packets_sent_total",
                                "RTP packets sent to Asterisk.", registry=r)
        self.rtp_lost = Counter("switchboard_rtp_packets_lost_total",
                                "Caller frames lost or too late (concealed).", registry=r)
        self.rtp_dropped = Counter("switchboard_rtp_packets_dropped_total",
                                   "Packets dropped: foreign source, bad header, wrong type.",
                                   registry=r)
        self.rtp_jitter = Histogram("switchboard_rtp_jitter_seconds",
                                    "Receive jitter-buffer delay per call.",
                                    buckets=(0.01, 0.02, 0.04, 0.06, 0.08, 0.12, 0.2),
                                    registry=r)
        self.inference = Histogram("switchboard_inference_seconds",
                                   "Engine time per request.", ["engine"],
                                   buckets=LATENCY_BUCKETS, registry=r)
        self.rejected = Counter("switchboard_calls_rejected_total",
                                "Calls refused (all lines busy, unknown agent).", ["reason"],
                                registry=r)

    def observe_turn(self, marks_ms: dict[str, float]) -> None:
        """One finished turn's timings (milliseconds after the end of caller speech)."""
        for stage in LATENCY_STAGES:
            if stage in marks_ms:
                self.stage_latency.labels(stage).observe(max(0.0, marks_ms[stage]) / 1000)
        if "first_audio_out" in marks_ms:
            self.voice_to_voice.observe(max(0.0, marks_ms["first_audio_out"]) / 1000)
        for engine, start, end in (("stt", "turn_detected", "stt_done"),
                                   ("llm_first_token", "stt_done", "llm_first_token"),
                                   ("tts_first_audio", "first_clause", "tts_first_audio")):
            if start in marks_ms and end in marks_ms:
                self.inference.labels(engine).observe(max(0.0, marks_ms[end] - marks_ms[start])
                                                      / 1000)

    def count_media(self, seen: dict[str, int], rtp: dict[str, int],
                    jitter: dict[str, int]) -> None:
        """Add what one call's media counters gained since ``seen`` (updated in place):
        called every second during the call, so an attack in progress shows."""
        now = {"rx": rtp.get("rx", 0), "tx": rtp.get("tx", 0),
               "dropped": rtp.get("rx_bad", 0) + rtp.get("rx_foreign", 0)
               + rtp.get("rx_wrong_pt", 0),
               "lost": jitter.get("lost", 0) + jitter.get("late", 0)}
        for key, counter in (("rx", self.rtp_received), ("tx", self.rtp_sent),
                             ("dropped", self.rtp_dropped), ("lost", self.rtp_lost)):
            gained = now[key] - seen.get(key, 0)
            if gained > 0:
                counter.inc(gained)
            seen[key] = now[key]


class StatusServer:
    """``/metrics`` and ``/status`` on loopback."""

    def __init__(self, metrics: Metrics, status: Callable[[], dict[str, Any]],
                 host: str = "127.0.0.1", port: int = 9108) -> None:
        self.metrics = metrics
        self.status = status
        self.host = host
        self.port = port
        self.started = time.time()
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/status", self._status)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.host, self.port).start()
        except OSError as exc:  # the daemon works without it; say why it is missing
            log.error("metrics/status endpoint not started on %s:%d: %s", self.host,
                      self.port, exc)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _status(self, request: web.Request) -> web.Response:
        body = {"uptime_seconds": round(time.time() - self.started, 1), **self.status()}
        return web.Response(text=json.dumps(body), content_type="application/json")
