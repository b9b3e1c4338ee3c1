"""The README's pictures of the weekly report (section "Did it work?"). Run by hand, not by CI:

    .venv/bin/python -m docs.report_demo [--out docs/screenshots] [--chromium /usr/bin/chromium]

In a temporary folder: the sample practice (every channel uncommented) with ``links`` on is run once, to the outbox;
then four weeks of clicks on its short links are made up (a fixed random seed; people mostly at lunch and in the
evening, previews within seconds of each send) and each channel's numbers are set as its provider would report
them, one refused as "permission missing". The report of those four weeks is written as the email's HTML (charts
inline) and photographed by headless Chromium (Debian's ``chromium``) 375 px wide, as a phone shows it; its charts
are saved as they are.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import subprocess
import tempfile
from datetime import timedelta
from pathlib import Path

from carecast import pipeline, report
from carecast.charts import charts
from carecast.ledger import Ledger
from carecast.links import classify
from carecast.model import now_utc
from carecast.practice import load_settings
from carecast.report_mail import report_html, report_markdown
from tests.conftest import commented_channels, write_config

ROOT = Path(__file__).resolve().parents[1]
PREVIEWS = ["Slackbot 1.0 (+https://api.slack.com/robots)", "facebookexternalhit/1.1", "Twitterbot/1.0", "Mozilla/5.0"]
#: Made-up provider numbers per channel type, as their APIs name them.
NUMBERS = {
    "x": {"like_count": 14, "retweet_count": 3, "impression_count": 610},
    "mastodon": {"favourites_count": 9, "reblogs_count": 2, "replies_count": 1},
    "facebook": {"post_impressions_unique": 380, "post_clicks": 21},
    "instagram": {"reach": 240, "likes": 27, "saved": 4},
    "linkedin": {"impressionCount": 210, "clickCount": 9, "likeCount": 7},
    "bluesky": {"like_count": 11, "repost_count": 2},
    "gbp": {"website_clicks": 18, "call_clicks": 6},
}


def demo(out: Path, chromium: str, artifact: bool) -> None:
    """Make the demo ledger, write the report's HTML and charts under ``out``, photograph it at 375 px."""
    rng = random.Random(21)
    with tempfile.TemporaryDirectory() as folder:
        settings = load_settings(
            write_config(Path(folder), {"links": {"domain": "go.oakviewpt.com"}, **commented_channels()})
        )
        ledger = Ledger(settings.ledger_url())
        try:
            pipeline.sync_audience(settings, ledger)
            for source in settings.sources:
                pipeline.ingest(settings, ledger, source)
            for channel in pipeline.channel_names(settings):
                pipeline.adapt(settings, ledger, channel)
                pipeline.publish(settings, ledger, channel)
            start = now_utc()
            with ledger.engine.connect() as connection:
                links = list(connection.exec_driver_sql("SELECT id, channel FROM short_links"))
            clicks = []
            for link_id, channel in links:
                for agent in rng.sample(PREVIEWS, 2):
                    clicks.append((link_id, *classify(agent), start + timedelta(seconds=rng.randint(1, 30))))
                for _ in range(rng.randint(2, 40 if channel in ("newsletter", "sms") else 15)):
                    day = rng.choice([1, 1, 2, 3, 7, 8, 9, 14, 15, 21, 22])
                    hour = rng.choice([12, 12, 13, 18, 19, 19, 20, 8])
                    moment = (start + timedelta(days=day)).astimezone(settings.practice.zone).replace(hour=hour)
                    clicks.append((link_id, "person", rng.choice(["mobile", "mobile", "desktop"]), moment))
            ledger.record_clicks(clicks)
            for record in ledger.publications():
                kind = settings.channels[record.channel].type
                for subject in record.provider_ids[:1] or [f"outbox-{record.id}"]:
                    numbers = {key: max(0, value + rng.randint(-5, 5)) for key, value in NUMBERS.get(kind, {}).items()}
                    problems = {"impressions": "permission missing: read_insights"} if kind == "facebook" else {}
                    if numbers or problems:
                        ledger.save_metrics(record.id, subject, numbers, problems)
            built = report.build(settings, ledger, start - timedelta(days=1), start + timedelta(days=28))
        finally:
            ledger.close()
        images = charts(built.clicks, settings.practice.zone)
        out.mkdir(parents=True, exist_ok=True)
        for name, png in images.items():
            (out / f"report-{name}").write_bytes(png)
        sources = {name: f"data:image/png;base64,{base64.b64encode(png).decode()}" for name, png in images.items()}
        page = Path(folder) / "report-email.html"
        page.write_text(report_html(built, sources))
        (out / "report.txt").write_text(report.render_table(built) + "\n")
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=375,1500"]
        profile = f"--user-data-dir={Path(folder) / 'chromium'}"
        shot = f"--screenshot={out / 'report-375.png'}"
        # Chromium's own temporary files go in the folder that is removed, not in /tmp.
        environment = {**os.environ, "TMPDIR": folder, "HOME": folder}
        subprocess.run(
            [chromium, *flags, profile, shot, page.as_uri()], check=True, capture_output=True, env=environment
        )
        if artifact:
            artifact_picture(chromium, out, Path(folder), report_markdown(built, images), settings.practice.timezone)


def artifact_picture(chromium: str, out: Path, folder: Path, markdown: str, zone: str) -> None:
    """The report as the Prefect UI shows its artifact, 375 px wide: a Prefect server of its own, the artifact
    created through its API as the ``report`` flow creates it."""
    from docs.screenshots import screenshot
    from tests.prefect_server import start_prefect

    (folder / "prefect").mkdir()
    with start_prefect(folder / "prefect") as server:
        made = server.api("POST", "/artifacts/", {"key": "oakview-pt-report", "type": "markdown", "data": markdown})
        ui = server.api.url.removesuffix("/api") + "/v2"
        target = out / "report-artifact-375.png"
        screenshot(chromium, f"{ui}/artifacts/artifact/{made['id']}", target, (375, 1400), zone, folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--artifact", action="store_true", help="also the Prefect UI's artifact (starts a server)")
    args = parser.parse_args()
    demo(args.out, args.chromium, args.artifact)


if __name__ == "__main__":
    main()
