"""Render an HTML email in headless Chromium (Debian's ``chromium``) at a phone's or a desktop's width, measure it
and take its screenshot.

Headless Chromium will not open a window narrower than 500 px, so the email is laid out in an iframe of the wanted
width, whose viewport is then exactly that wide: its media queries, its scroll width and its images are measured
there, and a screenshot is cropped to it. Remote images are replaced by a local 1600 x 1000 JPEG, the worst case
(wider than any column), so nothing leaves the machine.

Regenerate the README's screenshots with ``.venv/bin/python -m tests.browser docs/screenshots``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from html import unescape
from pathlib import Path

import PIL.Image

CHROMIUM = "chromium"
#: Headless Chromium's narrowest window.
WINDOW_MIN = 500
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--allow-file-access-from-files"]
_MEASURE = """
<script>
const frame = document.getElementById("email");
frame.addEventListener("load", () => {
  const doc = frame.contentDocument, win = frame.contentWindow;
  const images = [...doc.images].map(image => ({
    src: image.getAttribute("src"),
    width: image.getBoundingClientRect().width,
    column: image.parentElement.getBoundingClientRect().width,
  }));
  document.body.setAttribute("data-result", JSON.stringify({
    viewport: win.innerWidth, scroll_width: doc.documentElement.scrollWidth,
    height: doc.body.scrollHeight, images,
  }));
});
</script>
"""


@dataclass(frozen=True)
class Layout:
    """How an email lays out at one width: the viewport, how wide its content scrolls, each image's width beside its
    column's, and its height."""

    viewport: int
    scroll_width: int
    height: int
    images: list[dict[str, object]]


def chromium_path() -> str | None:
    return shutil.which(CHROMIUM)


def _stage(html: str, folder: Path, width: int, height: int) -> Path:
    """Write the email (its images made local) and a page framing it at ``width``; return the page."""
    photo = folder / "photo.jpg"
    if not photo.exists():
        PIL.Image.new("RGB", (1600, 1000), (120, 160, 180)).save(photo, quality=60)
    local = re.sub(r'src="https?://[^"]*"', f'src="{photo.as_uri()}"', html)
    (folder / "email.html").write_text(local, encoding="utf-8")
    page = folder / f"frame-{width}.html"
    page.write_text(
        '<!doctype html><html><body style="margin:0;background:#fff">'
        f'<iframe id="email" src="email.html" style="border:0;display:block;width:{width}px;height:{height}px">'
        f"</iframe>{_MEASURE}</body></html>",
        encoding="utf-8",
    )
    return page


def _run(args: list[str]) -> str:
    # Chromium wants a writable home for its profile; a temporary one keeps runs apart and goes with the run.
    with tempfile.TemporaryDirectory(prefix="chromium-home-", ignore_cleanup_errors=True) as home:
        result = subprocess.run(
            [CHROMIUM, *_FLAGS, *args], capture_output=True, text=True, timeout=120, check=False, env=_env(home)
        )
    if result.returncode != 0:
        raise RuntimeError(f"chromium failed ({result.returncode}): {result.stderr[-2000:]}")
    return result.stdout


def _env(home: str) -> dict[str, str]:
    return {**os.environ, "HOME": home}


def measure(html: str, width: int, folder: Path) -> Layout:
    """Lay ``html`` out at ``width`` CSS pixels and measure it. Raises RuntimeError when Chromium fails."""
    page = _stage(html, folder, width, 4000)
    dom = _run(
        [f"--window-size={max(width, WINDOW_MIN)},4000", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()]
    )
    found = re.search(r'data-result="([^"]*)"', dom)
    if not found:
        raise RuntimeError("the page reported no measurements")
    data = json.loads(unescape(found.group(1)))
    return Layout(data["viewport"], data["scroll_width"], data["height"], data["images"])


def screenshot(html: str, width: int, target: Path, folder: Path) -> Path:
    """A PNG of the whole email at ``width`` CSS pixels, written to ``target``. Raises RuntimeError as ``measure``."""
    height = measure(html, width, folder).height
    page = _stage(html, folder, width, height)
    shot = folder / f"shot-{width}.png"
    _run(
        [
            f"--window-size={max(width, WINDOW_MIN)},{height}",
            "--virtual-time-budget=5000",
            f"--screenshot={shot}",
            page.as_uri(),
        ]
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    with PIL.Image.open(shot) as image:
        image.crop((0, 0, width, height)).save(target)
    return target


def sample_newsletter_html() -> str:
    """The sample practice's newsletter of its four newest blog posts, as CareCast renders it."""
    from carecast.practice import load_settings
    from carecast.sources import read_source
    from carecast_channels.newsletter import NewsletterChannel

    settings = load_settings(Path(__file__).resolve().parents[1] / "config" / "carecast.yaml")
    items = read_source("blog", settings.sources["blog"], settings).items[:4]
    channel = NewsletterChannel("newsletter", settings.channels["newsletter"], settings)
    return channel.render(items).html or ""


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")
    with tempfile.TemporaryDirectory() as work:
        for size in (375, 600):
            print(screenshot(sample_newsletter_html(), size, out / f"newsletter-{size}.png", Path(work)))
