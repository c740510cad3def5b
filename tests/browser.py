"""Headless Chromium for the page tests: find it (or skip, unless CI requires it), run it once on a URL,
or drive it through the DevTools protocol to type into a page like a user.

The DevTools connection is `--remote-debugging-pipe`: Chromium reads commands from its fd 3 and writes
replies and events to its fd 4, each a JSON text ended by a NUL byte; no websocket library is needed.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_or_skip() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and not os.environ.get("GCL_VDB_REQUIRE_BROWSER"):
        pytest.skip("headless Chromium is not installed (`make browser` installs it; CI sets "
                    "GCL_VDB_REQUIRE_BROWSER so that this never skips there)")
    assert found is not None, "GCL_VDB_REQUIRE_BROWSER is set but no chromium is on PATH"
    return found


def browse(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """One headless run (e.g. `--dump-dom URL`, `--screenshot=FILE URL`)."""
    return subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=120)


class DevTools:
    """A headless Chromium with one page, driven by DevTools commands (`call`) and waiting on events."""

    def __init__(self, chromium: str, profile: Path, timeout_s: float = 60) -> None:
        self.timeout_s = timeout_s
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire_fds() -> None:  # in the child: our pipe ends become its fds 3 (commands) and 4 (replies)
            commands, replies = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(commands, 3)
            os.dup2(replies, 4)

        self.process = subprocess.Popen(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
             "--window-size=1200,900", "about:blank"],
            pass_fds=(3, 4), preexec_fn=wire_fds, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime"):
            self.call(f"{domain}.enable", session=True)

    def call(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                assert "error" not in reply, f"{method}: {reply['error']}"
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, event: str) -> dict[str, Any]:
        """The first event named `event` not waited for yet (events seen meanwhile are kept)."""
        while True:
            for i, seen in enumerate(self.events):
                if seen.get("method") == event:
                    return self.events.pop(i)
            self.events.append(self._read())

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited; DevTools ignores the CSP)."""
        result = self.call("Runtime.evaluate", session=True, expression=expression, awaitPromise=True,
                           returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def _read(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_s
        while b"\0" not in self._buffer:
            readable, _, _ = select.select([self._from_chrome], [], [], max(0.0, deadline - time.monotonic()))
            assert readable, f"no answer from Chromium within {self.timeout_s} s"
            chunk = os.read(self._from_chrome, 1 << 16)
            assert chunk, "Chromium closed its DevTools pipe"
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except AssertionError:
            pass
        finally:
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
            os.close(self._to_chrome)
            os.close(self._from_chrome)
