"""Open a page in headless Chromium and report what a reader would see: a screenshot, the
console errors, any request that leaves the page, and images that fail to decode.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: the
browser reads NUL-terminated JSON commands on fd 3 and writes replies and events on fd 4), so
no TCP port is opened and several checks can run side by side on one machine.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless_shell")
# Flags that keep a headless run quiet and offline: no sandbox (containers run as root), no
# GPU, no first-run UI, and no background traffic to Google services.
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--disable-dev-shm-usage", "--hide-scrollbars",
    "--mute-audio", "--no-default-browser-check", "--remote-debugging-pipe",
]
_LAUNCHER = ("import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
             "os.close(int(sys.argv[1])); os.close(int(sys.argv[2])); os.execv(sys.argv[3], sys.argv[3:])")
_LOCAL_SCHEMES = ("file:", "data:", "about:", "chrome:", "chrome-error:")
# Reports the page's height, its section ids and the images that did not decode.
_PAGE_FACTS = """JSON.stringify({
  height: document.documentElement.scrollHeight,
  sections: Array.from(document.querySelectorAll('section[id]')).map(s => s.id),
  images: document.images.length,
  broken: Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt),
  svgs: document.querySelectorAll('svg').length
})"""


class BrowserError(RuntimeError):
    """Chromium is missing, crashed, or did not answer in time."""


@dataclass
class PageResult:
    """What opening the page produced."""

    screenshot: Path
    console_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    failed_loads: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    images: int = 0
    svgs: int = 0
    page_height: int = 0
    value: Any = None  # what the `until` expression returned

    def problems(self) -> list[str]:
        """Everything a reader would notice as wrong; empty when the page is fine."""
        return ([f"console: {e}" for e in self.console_errors]
                + [f"external request: {u}" for u in self.external_requests]
                + [f"failed load: {u}" for u in self.failed_loads]
                + [f"image did not decode: {a}" for a in self.broken_images])


def find_chromium() -> str | None:
    """The Chromium binary: ``$VIDLOOM_CHROMIUM``, else the first known name on PATH."""
    env = os.environ.get("VIDLOOM_CHROMIUM")
    if env:
        return env
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class _Pipe:
    """The DevTools protocol over Chromium's fd 3 / fd 4 pipe."""

    def __init__(self, proc: subprocess.Popen, to_browser: int, from_browser: int):
        self.proc, self._out, self._in = proc, to_browser, from_browser
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self._inbox: "queue.Queue[dict[str, Any] | None]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._in, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                self._inbox.put(None)
                return
            buf += chunk
            *messages, buf = buf.split(b"\0")
            for m in messages:
                self._inbox.put(json.loads(m))

    def _pump(self, deadline: float) -> dict[str, Any]:
        try:
            msg = self._inbox.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            raise BrowserError("Chromium did not answer in time") from None
        if msg is None:
            raise BrowserError(f"Chromium exited (code {self.proc.poll()})")
        if "method" in msg:
            self.events.append(msg)
        return msg

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 60.0) -> dict[str, Any]:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._out, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._pump(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})

    def wait_event(self, method: str, session: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        if any(e["method"] == method and e.get("sessionId") == session for e in self.events):
            return
        while True:
            e = self._pump(deadline)
            if e.get("method") == method and e.get("sessionId") == session:
                return


def _console_text(params: dict[str, Any]) -> str:
    args = params.get("args") or []
    return " ".join(str(a.get("value", a.get("description", ""))) for a in args)


def _high_pipe() -> tuple[int, int]:
    """A pipe whose ends are numbered 10 or more, so that moving them onto fd 3 and 4 in the
    child can never overwrite one with the other."""
    ends = []
    for fd in os.pipe():
        ends.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10))
        os.close(fd)
    return ends[0], ends[1]


def open_in_chromium(page: str | Path, screenshot: str | Path, *, width: int = 1280, height: int = 2000,
                     full_page: bool = False, timeout: float = 90.0, script: str | None = None,
                     until: str | None = None) -> PageResult:
    """Load `page` (a local HTML file, or an http(s) URL whose own origin then counts as local)
    in headless Chromium at `width`×`height`, save a PNG screenshot (the first screen, or the
    whole page with `full_page`) and return what the browser reported. `script` (JavaScript)
    runs once the page has loaded, e.g. to fill and submit a form; `until` (a JavaScript
    expression) is then polled until it returns a truthy value, kept in `PageResult.value`.
    Raises `BrowserError` if Chromium is missing or fails, or `until` stays false."""
    binary = find_chromium()
    if binary is None:
        raise BrowserError("Chromium not found: install Debian's `chromium` package or set VIDLOOM_CHROMIUM")
    url = str(page) if str(page).startswith(("http://", "https://")) else Path(page).resolve().as_uri()
    screenshot = Path(screenshot)
    with tempfile.TemporaryDirectory(prefix="vidloom-chromium-") as profile:
        to_browser_r, to_browser_w = _high_pipe()
        from_browser_r, from_browser_w = _high_pipe()
        # A tiny Python launcher moves our pipe ends onto fd 3 and 4, where Chromium expects
        # them (dash cannot redirect fds above 9, and preexec_fn is unsafe with threads).
        proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, str(to_browser_r), str(from_browser_w), binary, *FLAGS,
             f"--user-data-dir={profile}", f"--window-size={width},{height}"],
            pass_fds=(to_browser_r, from_browser_w), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        pipe = _Pipe(proc, to_browser_w, from_browser_r)
        try:
            return _drive(pipe, url, screenshot, width, height, full_page, timeout, script, until)
        finally:
            try:
                pipe.call("Browser.close", timeout=10)
            except (BrowserError, OSError):
                pass  # already gone
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            os.close(to_browser_w)
            os.close(from_browser_r)


def _evaluate(pipe: _Pipe, session: str, expression: str) -> Any:
    reply = pipe.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True},
                      session=session)
    if "exceptionDetails" in reply:
        raise BrowserError(f"script failed: {reply['exceptionDetails'].get('text')}")
    return reply["result"].get("value")


def _drive(pipe: _Pipe, url: str, screenshot: Path, width: int, height: int, full_page: bool,
           timeout: float, script: str | None = None, until: str | None = None) -> PageResult:
    target = pipe.call("Target.createTarget", {"url": "about:blank"}, timeout=timeout)["targetId"]
    session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        pipe.call(f"{domain}.enable", session=session)
    pipe.call("Emulation.setDeviceMetricsOverride",
              {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
    pipe.events.clear()
    pipe.call("Page.navigate", {"url": url}, session=session, timeout=timeout)
    pipe.wait_event("Page.loadEventFired", session, timeout=timeout)
    value = None
    if script:
        _evaluate(pipe, session, script)
    if until:
        deadline = time.monotonic() + timeout
        while not (value := _evaluate(pipe, session, until)):
            if time.monotonic() > deadline:
                raise BrowserError(f"still false after {timeout:g} s: {until}")
            time.sleep(0.25)
    facts = json.loads(pipe.call("Runtime.evaluate", {"expression": _PAGE_FACTS, "returnByValue": True},
                                 session=session)["result"]["value"])
    shot: dict[str, Any] = {"format": "png"}
    if full_page:
        shot.update(captureBeyondViewport=True,
                    clip={"x": 0, "y": 0, "width": width, "height": int(facts["height"]), "scale": 1})
    data = pipe.call("Page.captureScreenshot", shot, session=session, timeout=timeout)["data"]
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.write_bytes(base64.b64decode(data))

    result = PageResult(screenshot, sections=facts["sections"], images=facts["images"], svgs=facts["svgs"],
                        broken_images=facts["broken"], page_height=int(facts["height"]), value=value)
    origin = "/".join(url.split("/")[:3]) + "/" if url.startswith("http") else None
    for e in pipe.events:
        if e.get("sessionId") != session:
            continue
        p, m = e.get("params", {}), e["method"]
        if m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            result.console_errors.append(d.get("exception", {}).get("description") or d.get("text", "exception"))
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            result.console_errors.append(_console_text(p))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            result.console_errors.append(p["entry"].get("text", ""))
        elif m == "Network.requestWillBeSent":
            u = p.get("request", {}).get("url", "")
            if not u.startswith(_LOCAL_SCHEMES + ((origin, "blob:" + origin) if origin else ())):
                result.external_requests.append(u)
        elif m == "Network.loadingFailed" and not p.get("canceled"):
            result.failed_loads.append(f"{p.get('errorText')} ({p.get('type')})")
    return result
