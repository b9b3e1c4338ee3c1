"""The newsletter as receivers see it: laid out by headless Chromium at a phone's and a desktop's width, and scored
by SpamAssassin with its offline rules.

Both need a Debian package (``chromium``, ``spamassassin``). Without it a test is skipped with the package to
install, except in CI (``CI=true``), where ``.ci/run`` installs both and a missing one fails the test.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import PIL.Image
import pytest

from carecast.practice import load_settings
from carecast.sources import read_source
from carecast_channels.newsletter import NewsletterChannel
from tests.browser import images_off, measure, sample_newsletter_html
from tests.factories import make_item

CONFIG = Path(__file__).resolve().parents[2] / "config" / "carecast.yaml"
#: The most a sample newsletter may score (SpamAssassin flags at 5.0; it scores 0.0 today).
SPAM_SCORE_LIMIT = 1.0


def require(program: str, package: str) -> str:
    """The path of ``program``; skips the test naming the Debian package to install, or fails it in CI."""
    path = shutil.which(program)
    if path is None:
        message = f"needs {program}: apt-get install {package}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (.ci/run installs it)")
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def sample_html() -> str:
    return sample_newsletter_html()


@pytest.mark.parametrize("width", [375, 600])
def test_no_horizontal_scroll_and_no_image_wider_than_its_column(sample_html: str, width: int, tmp_path: Path) -> None:
    require("chromium", "chromium")
    layout = measure(sample_html, width, tmp_path)
    assert layout.viewport == width
    assert layout.scroll_width <= width, f"scrolls sideways: {layout.scroll_width}px wide at {width}px"
    assert len(layout.images) == 4  # one hero per item; the posts' own copies of it are not shown twice
    for image in layout.images:
        assert float(str(image["width"])) <= float(str(image["column"])) <= width


def test_the_sample_newsletter_scores_low_with_spamassassin(tmp_path: Path) -> None:
    spamassassin = require("spamassassin", "spamassassin")
    settings = load_settings(CONFIG)
    items = read_source("blog", settings.sources["blog"], settings).items[:4]
    channel = NewsletterChannel("newsletter", settings.channels["newsletter"], settings)
    # The bytes a fan-out sends, with a token as the ledger issues them.
    token = "Vq3xZ0-mT8_kLw2RbYc9HnJd4sFpA7Ue"
    message, _ = channel.prepare_message(channel.render(items), len(token)).for_recipient(
        "Pat Doe", "pat@example.com", token
    )
    # -L: local tests only (no network lookups), the rules Debian ships; -t: report every rule that fired.
    report = subprocess.run(
        [spamassassin, "-L", "-t"],
        input=message,
        capture_output=True,
        timeout=120,
        check=True,
        env={**os.environ, "HOME": str(tmp_path)},
    ).stdout.decode("utf-8", "replace")
    status = re.search(r"^X-Spam-Status: \w+, score=(-?[\d.]+)", report, re.MULTILINE)
    assert status, report[-3000:]
    assert float(status.group(1)) <= SPAM_SCORE_LIMIT, report[report.find("Content analysis details") :]
    # MJML's white preheader text alone cost 0.7 (HTML_FONT_LOW_CONTRAST).
    assert "HTML_FONT_LOW_CONTRAST" not in report


def test_the_preview_is_the_email_on_a_phone_never_its_markup(sample_html: str) -> None:
    from carecast_flows.artifacts import email_preview

    require("chromium", "chromium")
    [line] = email_preview(sample_html, "text part")
    assert line.startswith("![The email on a phone, 375 px wide](data:image/jpeg;base64,")
    picture = PIL.Image.open(io.BytesIO(base64.b64decode(line.rsplit(",", 1)[1].rstrip(")"))))
    assert picture.width == 375 and 1000 < picture.height < 4000  # cropped to the email, not the frame
    assert "<" not in line


def test_a_phone_gives_a_tables_cells_less_padding_and_a_smaller_font(sample_html: str) -> None:
    """Seven columns on a 375 px phone broke every name and header mid-word: the 16 px of padding a cell has on a
    desktop take a third of the column there. The phone's rule survives the inlining (a ``<style>`` kept in the
    head)."""
    rule = re.search(r"@media \(max-width: 480px\) \{\s*\.item-body td, \.item-body th \{([^}]*)\}", sample_html)
    assert rule is not None
    assert "padding: 4px 3px !important" in rule.group(1) and "font-size: 14px !important" in rule.group(1)


def test_a_table_of_nine_columns_of_numbers_scrolls_in_its_box_and_the_email_fits_a_phone(tmp_path: Path) -> None:
    """A clinic's fee schedule of nine columns of prices: each price stays on one line (never "$1" over "65"), so the
    table is wider than a phone; it scrolls sideways in its own box, the email around it does not."""
    require("chromium", "chromium")
    header = "<tr>" + "".join(f"<th>Visit {n}</th>" for n in range(1, 10)) + "</tr>"
    rows = "".join(
        "<tr>" + "".join(f"<td>${(week * 9 + n) * 1_011:,}</td>" for n in range(9)) + "</tr>" for week in range(6)
    )
    summary = f"<p>Our fees for the year ahead, visit by visit.</p><table>{header}{rows}</table>"
    settings = load_settings(CONFIG)
    channel = NewsletterChannel("newsletter", settings.channels["newsletter"], settings)
    html = channel.render([make_item(summary_html=summary)]).html or ""
    assert re.search(r'<div style="overflow-x: auto;[^"]*"><table', html)
    for email in (html, images_off(html)):
        layout = measure(email, 375, tmp_path)
        assert layout.scroll_width <= 375, f"scrolls sideways: {layout.scroll_width}px wide"


def test_a_tables_words_are_never_broken_mid_word_on_a_phone(tmp_path: Path) -> None:
    """The column breaks long words (MJML's ``word-break: break-word``), which let Chromium size a table's column to
    a letter: a price list's "LOW" header showed as "LO" over "W" at 375 px. A cell breaks between words only."""
    require("chromium", "chromium")
    header = "<tr><th>ITEM</th><th>QUANTITY</th><th>LOW</th><th>HIGH</th></tr>"
    row = (
        "<tr><td>Electrical Service Panel Job Materials and Supplies</td><td>1 Panel</td><td>$26</td><td>$491</td></tr>"
    )
    summary = f"<p>What a new panel costs.</p><table>{header}{row * 3}</table>"
    settings = load_settings(CONFIG)
    channel = NewsletterChannel("newsletter", settings.channels["newsletter"], settings)
    html = channel.render([make_item(summary_html=summary)]).html or ""
    for email in (html, images_off(html)):
        layout = measure(email, 375, tmp_path)
        assert layout.broken_words == []
        assert layout.scroll_width <= 375


def test_with_images_off_a_pictures_alt_text_reads_in_the_emails_own_type(sample_html: str) -> None:
    """Most clients show no pictures by default, only their alt text: in the email's sans-serif, grey, not the
    client's default serif (a hero's alt, the item's title by default, looked like a broken link above the title)."""
    styles = re.findall(r'<img [^>]*style="([^"]*)"', sample_html)
    assert styles
    for style in styles:
        assert "font-family: Arial, Helvetica, sans-serif" in style and "color: #5b6b73" in style, style
