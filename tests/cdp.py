"""A small Chrome DevTools Protocol client: Debian's headless ``chromium`` driven over its DevTools websocket
(``websockets``, which Prefect brings), for the browser test of the marketing coordinator's steps and the README's
screenshots. Playwright needs a browser download this closed network refuses; this needs only the ``chromium``
package.

Only what those steps need: open a page, wait for a condition in it, click an element by its text, type into a
field, and take a screenshot. The browser runs with its own temporary profile and is stopped when its ``with`` block
ends, whatever happened.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from PIL import Image
from websockets.sync.client import connect
from websockets.sync.connection import Connection

#: Colours a README picture keeps: the UI's flat greys, text and one blue read the same at a third of the bytes.
PICTURE_COLOURS = 64
#: Seconds a page may take to show what a step waits for (the UI loads its bundles on first use).
WAIT = 60.0
_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
]


class BrowserError(AssertionError):
    """A page did not show what a step waited for, or Chromium answered an error; the message says which."""


class Page:
    """One tab of the browser, driven through its DevTools websocket."""

    def __init__(self, socket: Connection) -> None:
        self.socket = socket
        self._ids = itertools.count(1)
        #: DevTools events received while waiting for answers (e.g. Network.*, once enabled).
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; its result. Raises BrowserError when Chromium answers an error."""
        number = next(self._ids)
        self.socket.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=WAIT))
            if message.get("id") == number:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            if "method" in message:
                self.events.append(message)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:80]}: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def wait_for(self, expression: str, what: str, timeout: float = WAIT) -> Any:
        """Poll the expression until it is truthy; its value. Raises BrowserError naming ``what`` when it never is."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except BrowserError:
                value = None  # the page is between two documents
            if value:
                return value
            time.sleep(0.25)
        raise BrowserError(f"{what}: not within {timeout:.0f} s")

    def wait_for_text(self, text: str, timeout: float = WAIT) -> None:
        self.wait_for(f"document.body && document.body.innerText.includes({json.dumps(text)})", repr(text), timeout)

    def click(
        self, text: str, selector: str = "button, a, [role=menuitem], [role=option], [role=tab], [role=combobox]"
    ) -> None:
        """Click, with the mouse, the last visible element matching ``selector`` whose text or label is ``text`` (the
        last: a dialog is drawn after the page; the mouse: menus open on pointer events, not on ``click()``).
        Raises BrowserError when none shows up."""
        wanted = json.dumps(text)
        script = f"""(() => {{
            const found = [...document.querySelectorAll({json.dumps(selector)})].filter(e =>
                ((e.innerText || "").trim() === {wanted} || e.getAttribute("aria-label") === {wanted})
                && e.getClientRects().length);
            if (!found.length) return null;
            const element = found[found.length - 1];
            element.scrollIntoView({{block: "center"}});
            const box = element.getBoundingClientRect();
            return [box.x + box.width / 2, box.y + box.height / 2];
        }})()"""
        x, y = self.wait_for(script, f"a {selector} saying {text!r}")
        self.mouse(x, y)

    def mouse(self, x: float, y: float) -> None:
        """A left click at ``(x, y)`` of the viewport, as a person's mouse makes it."""
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def key(self, name: str) -> None:
        """Press and release a key (``Escape``, ``Enter``) in the focused element."""
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, key=name, code=name)

    def click_link(self, fragment: str) -> None:
        """Click the first link whose address holds ``fragment``. Raises BrowserError when none shows up."""
        script = f"""(() => {{
            const link = [...document.querySelectorAll("a")].find(a => a.href.includes({json.dumps(fragment)}));
            if (!link) return false;
            link.click();
            return true;
        }})()"""
        self.wait_for(script, f"a link to {fragment}")

    def fill(self, selector: str, value: str) -> None:
        """Type ``value`` into the field ``selector``; see :meth:`fill_nth`."""
        self.fill_nth(selector, 0, value)

    def fill_nth(self, selector: str, index: int, value: str) -> None:
        """Type ``value`` into the ``index``-th field matching ``selector`` as a person would (React sees an input
        event). Raises BrowserError when there is no such field."""
        script = f"""(() => {{
            const field = document.querySelectorAll({json.dumps(selector)})[{index}];
            if (!field) return false;
            const prototype = field.tagName === "TEXTAREA" ? HTMLTextAreaElement.prototype : HTMLInputElement.prototype;
            Object.getOwnPropertyDescriptor(prototype, "value").set.call(field, {json.dumps(value)});
            field.dispatchEvent(new Event("input", {{bubbles: true}}));
            field.dispatchEvent(new Event("change", {{bubbles: true}}));
            return true;
        }})()"""
        self.wait_for(script, f"the field {selector}")

    def screenshot(self, target: Path, height: int | None = None) -> Path:
        """A PNG of the page as shown (``height``: of the whole page, up to that many pixels)."""
        if height is not None:
            self.call(
                "Emulation.setDeviceMetricsOverride", width=1400, height=height, deviceScaleFactor=1, mobile=False
            )
        data = self.call("Page.captureScreenshot", format="png")["data"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(base64.b64decode(data))
        if height is not None:
            self.call("Emulation.clearDeviceMetricsOverride")
        return target


def shrink(picture: Path) -> Path:
    """Rewrite a screenshot as a small PNG for the README: a palette of :data:`PICTURE_COLOURS` without dithering
    (sharp text), optimised. Raises OSError when the file is not an image."""
    with Image.open(picture) as image:
        small = image.convert("RGB").quantize(PICTURE_COLOURS, Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(picture, optimize=True)
    return picture


@contextmanager
def browser(zone: str = "UTC", window: tuple[int, int] = (1400, 1000)) -> Iterator[Page]:
    """Headless Chromium with one tab in time zone ``zone``; stopped at the end. Raises BrowserError when
    ``chromium`` is not installed or does not start."""
    chromium = shutil.which("chromium")
    if chromium is None:
        raise BrowserError("chromium is not installed (apt-get install chromium)")
    profile = tempfile.mkdtemp(prefix="carecast-cdp-")
    try:
        process = subprocess.Popen(
            [chromium, *_FLAGS, f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            # Chromium writes the port it chose to this file of its profile once it listens.
            active = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + WAIT
            while not (active.is_file() and active.read_text().strip()):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise BrowserError(f"chromium did not start listening (exit {process.poll()})")
                time.sleep(0.1)
            port = "127.0.0.1:" + active.read_text().split()[0]
            tabs = requests.get(f"http://{port}/json", timeout=10).json()
            tab = next(t for t in tabs if t["type"] == "page")
            with connect(tab["webSocketDebuggerUrl"], max_size=None, open_timeout=WAIT) as socket:
                page = Page(socket)
                page.call("Page.enable")
                page.call("Emulation.setTimezoneOverride", timezoneId=zone)
                yield page
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        _remove(Path(profile))


def _remove(folder: Path) -> None:
    """Remove the browser's profile; its helper processes may still be closing files in it for a moment."""
    deadline = time.monotonic() + 10
    while folder.exists():
        try:
            shutil.rmtree(folder)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
