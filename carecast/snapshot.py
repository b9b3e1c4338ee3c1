"""The newsletter as a patient sees it on a phone: its HTML laid out by headless Chromium (Debian's ``chromium``)
at 375 CSS pixels and photographed, for the preview staff approve from (never raw markup).

Headless Chromium opens no window narrower than 500 px, so the email is framed in an iframe exactly as wide as a
phone, and the picture cropped to it and to the email's height. Remote images are not fetched (the picture shows
their alt text): a preview contacts nobody.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import PIL.Image
import PIL.ImageChops

PHONE_WIDTH = 375
_WINDOW = 500
_HEIGHT = 4000
_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--disable-background-networking",
    "--blink-settings=imagesEnabled=false",
    "--virtual-time-budget=3000",
]


def phone_picture(html: str, width: int = PHONE_WIDTH, timeout: float = 60) -> bytes | None:
    """A JPEG of ``html`` at ``width`` CSS pixels, cropped to its content; None when Chromium is not installed or
    fails (the caller shows the email's text instead)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        return None
    with tempfile.TemporaryDirectory(prefix="carecast-preview-") as work:
        folder = Path(work)
        (folder / "email.html").write_text(html, encoding="utf-8")
        page = folder / "frame.html"
        page.write_text(
            '<!doctype html><html><body style="margin:0;background:#fff">'
            f'<iframe src="email.html" style="border:0;display:block;width:{width}px;height:{_HEIGHT}px"></iframe>'
            "</body></html>",
            encoding="utf-8",
        )
        shot = folder / "shot.png"
        try:
            subprocess.run(
                [chromium, *_FLAGS, f"--window-size={_WINDOW},{_HEIGHT}", f"--screenshot={shot}", page.as_uri()],
                capture_output=True,
                timeout=timeout,
                check=True,
                env={**os.environ, "HOME": work},  # Chromium wants a writable home for its profile
            )
            with PIL.Image.open(shot) as image:
                picture = image.convert("RGB").crop((0, 0, width, _HEIGHT))
        except (OSError, subprocess.SubprocessError, PIL.UnidentifiedImageError):
            return None
    # Cut the blank below the email: everything after the last row that differs from the bottom's colour.
    blank = PIL.Image.new("RGB", picture.size, picture.getpixel((width - 1, _HEIGHT - 1)))
    box = PIL.ImageChops.difference(picture, blank).getbbox()
    if box is not None:
        picture = picture.crop((0, 0, width, min(_HEIGHT, box[3] + 16)))
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=80)
    return out.getvalue()
