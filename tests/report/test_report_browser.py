"""The report in a real browser: headless Chromium opens it from ``file://`` offline.

How: Chromium is driven over the DevTools protocol on ``--remote-debugging-pipe`` (file
descriptors 3 and 4, NUL-separated JSON), with the standard library only. Unlike scraping
``--enable-logging`` output, the protocol reports every request the page makes
(``Network.requestWillBeSent``), every console message, log entry (CSP violations included),
uncaught exception and JavaScript dialog as structured events, and answers questions about the
rendered DOM, so the test can assert on them exactly.

The report is built from the analysis of the example trial whose names are hostile markup
(``hostile_results`` in conftest.py, shared with the report tests): an arm called
``<script>alert(1)</script>`` and a subject whose name starts ``<img src=x onerror=alert(2)>``
(if the escaping or the Content-Security-Policy ever failed, the image request, the alert
dialog or the blocked handler would show among the events below). The page
must make no request but its own, log nothing, open no dialog and hold no script element.
Screenshots (viewport and full page) and a PDF print are saved in the test's tmp folder.

Without a ``chromium`` binary the test is skipped, except on CI (``CI`` set), where it fails.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import HOSTILE_ARM

from crampstats.report import write_report

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--remote-debugging-pipe",
    "--hide-scrollbars", "--window-size=1280,900", "--disable-extensions",
    "--disable-default-apps", "--disable-sync", "--mute-audio",
]  # fmt: skip


def _chromium() -> str:
    binary = shutil.which("chromium")
    if binary is None:
        reason = "chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must install it")
        pytest.skip(f"{reason}; skipped outside CI, where a missing browser fails the test")
    return binary


class Browser:
    """Headless Chromium driven over the DevTools pipe (stdlib only)."""

    def __init__(self, binary: str, profile: Path) -> None:
        profile.mkdir(parents=True, exist_ok=True)
        cmd_read, self._write = os.pipe()
        self._read_fd, reply_write = os.pipe()
        # The browser reads commands on fd 3 and writes replies on fd 4. A tiny Python
        # launcher moves the pipe ends there and execs chromium (no preexec_fn, which is
        # unsafe in a process with threads, as the sampler leaves behind); the ends are first
        # copied above fd 10 so that moving one to 3 or 4 cannot overwrite the other.
        high_read = fcntl.fcntl(cmd_read, fcntl.F_DUPFD, 10)
        high_write = fcntl.fcntl(reply_write, fcntl.F_DUPFD, 10)
        os.close(cmd_read)
        os.close(reply_write)
        launcher = (
            "import os, sys\n"
            "r, w = int(sys.argv[1]), int(sys.argv[2])\n"
            "os.dup2(r, 3)\nos.dup2(w, 4)\nos.close(r)\nos.close(w)\n"
            "os.execv(sys.argv[3], sys.argv[3:])\n"
        )
        self.stderr_path = profile / "chromium-stderr.log"
        with open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    launcher,
                    str(high_read),
                    str(high_write),
                    binary,
                    *FLAGS,
                    f"--user-data-dir={profile}",
                    "about:blank",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                pass_fds=(high_read, high_write),
            )
        os.close(high_read)
        os.close(high_write)
        self._buffer = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def _message(self, timeout: float) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError("no message from chromium")
            ready, _, _ = select.select([self._read_fd], [], [], left)
            if ready:
                chunk = os.read(self._read_fd, 1 << 20)
                if not chunk:
                    raise EOFError(f"chromium closed the pipe; see {self.stderr_path}")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message = json.loads(raw)
        if message.get("method") == "Page.javascriptDialogOpening":
            raise AssertionError(f"the page opened a dialog: {message['params']}")
        return message

    def send(
        self,
        method: str,
        params: dict | None = None,
        session: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Send a command and return its result (events met on the way are kept)."""
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._write, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._message(timeout)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30.0) -> None:
        """Wait until an event ``method`` has arrived."""
        end = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._message(max(0.01, end - time.monotonic())))

    def settle(self, seconds: float) -> None:
        """Collect events for a while (late requests, deferred messages)."""
        end = time.monotonic() + seconds
        try:
            while (left := end - time.monotonic()) > 0:
                self.events.append(self._message(left))
        except TimeoutError:
            pass

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (OSError, EOFError, TimeoutError, RuntimeError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        os.close(self._write)
        os.close(self._read_fd)


def _problems(events: list[dict[str, Any]], page_url: str) -> list[str]:
    """Requests other than the page itself, failed loads, console output, logs, exceptions."""
    out = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent" and params["request"]["url"] != page_url:
            out.append(f"request: {params['request']['url']}")
        elif method == "Network.loadingFailed":
            out.append(f"failed load: {params.get('errorText')} {params.get('blockedReason')}")
        elif method == "Runtime.consoleAPICalled":
            args = [a.get("value", a.get("description")) for a in params.get("args", [])]
            out.append(f"console.{params.get('type')}: {args}")
        elif method == "Log.entryAdded":
            entry = params["entry"]
            if entry.get("level") in ("error", "warning"):
                out.append(f"log {entry['level']} ({entry.get('source')}): {entry.get('text')}")
        elif method == "Runtime.exceptionThrown":
            out.append(f"exception: {params.get('exceptionDetails', {}).get('text')}")
    return out


def _open(browser: Browser, url: str) -> str:
    """Open ``url`` in the browser's page and return the protocol session id."""
    end = time.monotonic() + 30
    while True:  # the first tab may appear a moment after the browser answers
        targets = browser.send("Target.getTargets")["targetInfos"]
        pages = [t for t in targets if t["type"] == "page"]
        if pages or time.monotonic() > end:
            break
        time.sleep(0.1)
    assert pages, f"chromium opened no page; see {browser.stderr_path}"
    page = pages[0]
    session = browser.send(
        "Target.attachToTarget", {"targetId": page["targetId"], "flatten": True}
    )["sessionId"]
    for method in ("Page.enable", "Network.enable", "Runtime.enable", "Log.enable"):
        browser.send(method, session=session)
    browser.send("Page.navigate", {"url": url}, session=session)
    browser.wait_for("Page.loadEventFired")
    browser.settle(1.5)
    return session


def _evaluate(browser: Browser, session: str, expression: str) -> Any:
    result = browser.send(
        "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session
    )
    return result["result"].get("value")


def test_harness_sees_requests_and_console_errors(tmp_path):
    """The checks can fail: a page with a remote image and a console error is caught."""
    binary = _chromium()
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/x.png">'
        '<script>console.error("boom")</script></body></html>',
        encoding="utf-8",
    )
    browser = Browser(binary, tmp_path / "profile")
    try:
        _open(browser, bad.as_uri())
        problems = _problems(browser.events, bad.as_uri())
    finally:
        browser.close()
    assert any(p.startswith("request: http://127.0.0.1:9/x.png") for p in problems), problems
    assert any("console.error" in p and "boom" in p for p in problems), problems


def test_report_opens_offline_without_requests_or_errors(hostile_results, tmp_path):
    binary = _chromium()
    results, _ = hostile_results
    report = write_report(results, tmp_path / "report.html")
    url = report.resolve().as_uri()
    browser = Browser(binary, tmp_path / "profile")
    try:
        session = _open(browser, url)
        state = _evaluate(
            browser,
            session,
            """JSON.stringify({
            scripts: document.querySelectorAll('script').length,
            sections: Array.from(document.querySelectorAll('section')).map(s => s.id),
            svgs: document.querySelectorAll('svg.figure').length,
            alert: !!document.getElementById('failed-diagnostics'),
            alertColor: getComputedStyle(document.getElementById('failed-diagnostics')).color,
            arms: Array.from(document.querySelectorAll('li.result')).map(li => li.dataset.arm),
            scrollWidth: document.documentElement.scrollWidth,
            innerWidth: window.innerWidth,
            images: document.images.length,
            title: document.title})""",
        )
        shot = browser.send("Page.captureScreenshot", {"format": "png"}, session=session)
        (tmp_path / "report.png").write_bytes(base64.b64decode(shot["data"]))
        full = browser.send(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True},
            session=session,
        )
        (tmp_path / "report-full.png").write_bytes(base64.b64decode(full["data"]))
        pdf = browser.send(
            "Page.printToPDF", {"printBackground": True}, session=session, timeout=60
        )
        (tmp_path / "report.pdf").write_bytes(base64.b64decode(pdf["data"]))
        browser.settle(0.5)
        problems = _problems(browser.events, url)
    finally:
        browser.close()
    print(f"screenshots and PDF in {tmp_path}")
    assert not problems, problems
    state = json.loads(state)
    assert state["scripts"] == 0 and state["images"] == 0
    for section in (
        "summary",
        "trial",
        "baseline",
        "primary",
        "decisions",
        "sensitivity",
        "course",
        "checking",
        "emg",
        "intensity",
        "safety",
        "methods",
        "provenance",
    ):
        assert section in state["sections"], section
    assert state["svgs"] >= 5
    # the hostile arm name is shown as text (its dataset value), never run
    assert HOSTILE_ARM in state["arms"]
    # undersampled fits: the alert is there, in red
    assert state["alert"] and state["alertColor"] == "rgb(176, 0, 32)"
    # readable on a laptop: nothing wider than the window
    assert state["scrollWidth"] <= state["innerWidth"], state
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "report.pdf").read_bytes()[:5] == b"%PDF-"


def test_missing_browser_skips_locally_and_fails_on_ci(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="skipped outside CI"):
        _chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must install it"):
        _chromium()
