"""The console in a real browser: headless Chromium (Debian's package) driven over the
DevTools protocol logs in, lists calls, opens a call and plays its recording, and shows
the live calls. Screenshots are kept in the test's temporary directory (paths printed)."""

from __future__ import annotations

import json
import socket

import pytest
from aiohttp import web
from cdp import CHROMIUM, Browser
from test_console import PASSWORD, Rig, status_server

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                "(tests/run installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """The console on a real loopback port (the browser needs one)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


async def log_in(browser: Browser, base: str, user: str = "ops",
                 password: str = PASSWORD) -> None:
    await browser.open(f"{base}/login")
    await browser.evaluate(
        f"document.getElementById('user').value = {json.dumps(user)};"
        f"document.getElementById('password').value = {json.dumps(password)};"
        "document.getElementById('login-button').click(); true")
    try:
        await browser.wait_for("location.pathname === '/calls' && "
                               "document.readyState === 'complete'", timeout=30)
    except TimeoutError:
        page = await browser.evaluate("location.href + ': ' + document.body.innerText")
        raise AssertionError(f"login did not reach the calls: {page[:500]}") from None


async def play(browser: Browser) -> dict:
    """Play the call page's recording for a moment; what the player reports."""
    return await browser.evaluate("""(async () => {
        const a = document.getElementById('player');
        await a.play();
        await new Promise(r => setTimeout(r, 1500));
        a.pause();
        return {time: a.currentTime, duration: a.duration, error: a.error && a.error.code};
    })()""")


async def test_login_calls_call_page_recording_and_live_calls(tmp_path) -> None:
    status = await status_server([{"id": "dddd11112222", "agent": "clinic",
                                   "direction": "inbound", "seconds": 42.0}])
    rig = Rig(tmp_path, str(status.make_url("/status")))
    runner, base = await serve(rig.app)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    try:
        async with Browser(tmp_path / "profile") as browser:
            await browser.open(f"{base}/calls", lands_on="/login")  # not logged in
            await log_in(browser, base)
            rows = await browser.evaluate("document.querySelectorAll('#calls tbody tr')"
                                          ".length")
            assert rows == 3
            await browser.screenshot(shots / "calls.png")

            await browser.open(f"{base}/calls?agent=shop")
            assert await browser.evaluate("document.querySelectorAll('#calls tbody tr')"
                                          ".length") == 1

            await browser.open(f"{base}/calls/aaaa11112222")
            assert await browser.evaluate("document.querySelectorAll('#timings rect')"
                                          ".length") >= 6
            # The caller's words are shown as text, never run as markup.
            text = await browser.evaluate("document.getElementById('transcript')"
                                          ".textContent")
            assert "<script>alert('x')</script>" in text
            assert await browser.evaluate("document.querySelectorAll('#transcript script')"
                                          ".length") == 0
            heard = await play(browser)
            assert heard["error"] is None, heard
            assert heard["time"] > 0.3 and heard["duration"] > 2, heard
            await browser.screenshot(shots / "call.png")

            await browser.open(f"{base}/live")
            summary = await browser.evaluate("document.getElementById('live-summary')"
                                             ".textContent")
            assert "1 call(s) in progress" in summary
            assert await browser.evaluate("document.getElementById('live').textContent"
                                          ".includes('dddd11112222')")
            await browser.screenshot(shots / "live.png")
    finally:
        await runner.cleanup()
        await status.close()
    print(f"\nconsole screenshots: {shots}")
