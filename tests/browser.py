"""Render an HTML email in headless Chromium (Debian's ``chromium``) at a phone's or a desktop's width, measure it
and take its screenshot.

Headless Chromium will not open a window narrower than 500 px, so the email is laid out in an iframe of the wanted
width, whose viewport is then exactly that wide: its media queries, its scroll width and its images are measured
there, and a screenshot is cropped to it. Many emails are measured in one run (``measure_all``), each in its own
iframe, so a corpus's hundred newsletters start Chromium once. Remote images are replaced by a local 1600 x 1000
JPEG, the worst case (wider than any column), so nothing leaves the machine.

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
// The page's load waits for every frame's.
window.addEventListener("load", () => {
  const layout = frame => {
    const doc = frame.contentDocument, win = frame.contentWindow;
    const images = [...doc.images].map(image => ({
      src: image.getAttribute("src"),
      width: image.getBoundingClientRect().width,
      column: image.parentElement.getBoundingClientRect().width,
    }));
    const scroll_width = doc.documentElement.scrollWidth;
    // A word (a run of letters and digits) of a table's cell that a line break splits ("LO" over "W"); a line
    // may break where Unicode allows it between two words, as after a hyphen, a slash or a comma in code.
    const broken_words = [];
    for (const cell of doc.querySelectorAll("td, th")) {
      if (cell.querySelector("table, div, p")) continue;  // the template's layout, not an article's table
      const walker = doc.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        for (const word of node.data.matchAll(/[\\p{L}\\p{N}\\p{M}]+/gu)) {
          const range = doc.createRange();
          range.setStart(node, word.index);
          range.setEnd(node, word.index + word[0].length);
          const lines = new Set([...range.getClientRects()].map(rect => Math.round(rect.top)));
          if (lines.size > 1) broken_words.push(word[0]);
        }
      }
    }
    return {viewport: win.innerWidth, scroll_width, height: doc.body.scrollHeight, images, broken_words};
  };
  const frames = [...document.querySelectorAll("iframe")];
  document.body.setAttribute("data-result", JSON.stringify(frames.map(layout)));
});
</script>
"""


@dataclass(frozen=True)
class Layout:
    """How an email lays out at one width: the viewport, how wide its content scrolls, each image's width beside its
    column's, its height, and the words of its tables' cells that a line break splits."""

    viewport: int
    scroll_width: int
    height: int
    images: list[dict[str, object]]
    broken_words: list[str]


def chromium_path() -> str | None:
    return shutil.which(CHROMIUM)


def _stage(htmls: list[str], folder: Path, width: int, height: int) -> Path:
    """Write the emails (their images made local) and a page framing each at ``width``, one under the other;
    return the page."""
    photo = folder / "photo.jpg"
    if not photo.exists():
        PIL.Image.new("RGB", (1600, 1000), (120, 160, 180)).save(photo, quality=60)
    frames = []
    for number, html in enumerate(htmls):
        local = re.sub(r'src="https?://[^"]*"', f'src="{photo.as_uri()}"', html)
        (folder / f"email-{number}.html").write_text(local, encoding="utf-8")
        frames.append(
            f'<iframe src="email-{number}.html" style="border:0;display:block;width:{width}px;height:{height}px">'
            "</iframe>"
        )
    page = folder / f"frame-{width}.html"
    page.write_text(
        f'<!doctype html><html><body style="margin:0;background:#fff">{"".join(frames)}{_MEASURE}</body></html>',
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
    (layout,) = measure_all([html], width, folder)
    return layout


def measure_all(htmls: list[str], width: int, folder: Path) -> list[Layout]:
    """Lay each of ``htmls`` out at ``width`` CSS pixels and measure it, all in one Chromium run (each email in its
    own frame). Raises RuntimeError when Chromium fails."""
    height = 4000 if len(htmls) == 1 else 400  # a frame's height changes no width; short frames keep the page small
    page = _stage(htmls, folder, width, height)
    dom = _run(
        [
            f"--window-size={max(width, WINDOW_MIN)},4000",
            f"--virtual-time-budget={5000 * len(htmls)}",
            "--dump-dom",
            page.as_uri(),
        ]
    )
    found = re.search(r'data-result="([^"]*)"', dom)
    if not found:
        raise RuntimeError("the page reported no measurements")
    return [
        Layout(data["viewport"], data["scroll_width"], data["height"], data["images"], data["broken_words"])
        for data in json.loads(unescape(found.group(1)))
    ]


def images_off(html: str) -> str:
    """``html`` as most mail clients show it by default: every remote picture a broken image, laid out by its
    attributes and styles only."""
    return re.sub(r'src="https?://[^"]*"', 'src="images-off.jpg"', html)


def screenshot(html: str, width: int, target: Path, folder: Path) -> Path:
    """A PNG of the whole email at ``width`` CSS pixels, written to ``target``. Raises RuntimeError as ``measure``."""
    height = measure(html, width, folder).height
    page = _stage([html], folder, width, height)
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
