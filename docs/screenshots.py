"""Screenshots of the Prefect UI at a slot, for the README's "For marketing staff" section (the pictures of its
step-by-step list are the browser test's, tests/flows/test_browser.py). Run by hand, not by CI:

    .venv/bin/pip install playwright   # drives Debian's chromium; downloads no browser
    .venv/bin/python -m docs.screenshots [--out docs/screenshots] [--chromium /usr/bin/chromium]

From the repo root, as a module: that puts the root on the import path, so the helpers the served tests use
(tests/prefect_server.py) are importable. They start a Prefect server on a free 127.0.0.1 port (its own PREFECT_HOME
in a temporary folder) and ``carecast serve`` on a temporary copy of config/ in which X is under review and has no
schedule, so that its run pauses for approval at once, and Mastodon is under review. Through the Prefect API it runs
ingest, then publish for the newsletter (which completes) and for X (which pauses). Headless Chromium (Debian's
``chromium`` package) photographs each page reachable by URL with ``--screenshot``; Playwright drives the same
Chromium for the two pictures that need a click (the paused run's menu and its Resume form). Pages are those of the
UI that http://127.0.0.1:4200 opens (Prefect 3.9's new UI, under /v2), in the practice's time zone. Stops ``carecast
serve``, then the server, whatever happened.

Raises SystemExit with the reason when a process dies, a run ends in the wrong state, or a page stays blank.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from tests.cdp import shrink
from tests.prefect_server import Api, NotReached, start_carecast_serve, start_prefect

ROOT = Path(__file__).resolve().parents[1]
RUN_TIMEOUT = 180.0
#: Below this many bytes a PNG is the UI still loading (seen: 29 KB; a drawn page: 85 KB and up): try again.
BLANK_PNG = 50_000
BUDGETS_MS = (15_000, 30_000, 60_000)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these, Chromium keeps dialling Google's hosts, which this closed network refuses.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
#: Window size, unless a page needs more room to show what staff look for.
WINDOW = (1400, 900)


def artifact(api: Api, run_id: str, key_part: str) -> str:
    """The id of a run's artifact whose key holds ``key_part``. Raises SystemExit when there is none."""
    found = api.artifacts(run_id)
    matching = sorted((a["key"], a["id"]) for a in found if key_part in (a["key"] or ""))
    if not matching:
        raise SystemExit(f"run {run_id}: no artifact *{key_part}* among {[a['key'] for a in found]}")
    return str(matching[0][1])


def practice_copy(folder: Path) -> Path:
    """config/ copied into ``folder``: X under review with no schedule (its drafts are due on every run), Mastodon
    under review (its drafts fill the calendar's "waiting for approval")."""
    shutil.copytree(ROOT / "config", folder / "config")
    file = folder / "config" / "carecast.yaml"
    data = yaml.safe_load(file.read_text())
    data["channels"]["x"].update(approval="review", schedule=[])
    # Late "skip" (15 min), so its drafts wait for the next slot rather than one that began within the last 2 h.
    data["channels"]["mastodon"].update(approval="review", late="skip")
    # The sample content is dated: a run next year must still find it recent enough to publish.
    for channel in data["channels"].values():
        channel["max_age_days"] = 3650
    file.write_text(yaml.safe_dump(data, sort_keys=False))
    return file


def screenshot(chromium: str, url: str, target: Path, window: tuple[int, int], zone: str, scratch: Path) -> None:
    """Photograph ``url`` into ``target``, with more virtual time while the page comes out blank.

    Raises SystemExit when Chromium fails or the page is still blank with the longest budget.
    """
    for budget in BUDGETS_MS:
        profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=scratch))
        done = subprocess.run(
            [
                chromium,
                *CHROMIUM_FLAGS,
                f"--window-size={window[0]},{window[1]}",
                f"--user-data-dir={profile}",
                f"--virtual-time-budget={budget}",
                f"--screenshot={target}",
                url,
            ],
            env={**os.environ, "TZ": zone},
            capture_output=True,
            timeout=budget / 1000 + 120,
        )
        if done.returncode != 0 or not target.exists():
            raise SystemExit(f"chromium on {url}: exit {done.returncode}: {done.stderr.decode()[-2000:]}")
        if target.stat().st_size >= BLANK_PNG:
            print(f"{target.name}: {shrink(target).stat().st_size // 1024} KB ({url}, {budget} ms)")
            return
    raise SystemExit(f"{url}: still blank after {BUDGETS_MS[-1]} ms ({target.stat().st_size} bytes)")


def resume_pictures(chromium: str, url: str, out: Path, zone: str) -> None:
    """The paused run with its menu open on Resume, then the Resume form, clicked through by Playwright.

    Raises playwright's TimeoutError when the page never shows the run's logs, the menu or the form.
    """
    from playwright.sync_api import sync_playwright  # only this picture needs it; see the module docstring

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": WINDOW[0], "height": WINDOW[1]}, timezone_id=zone)
            page.goto(url)
            page.get_by_text("Beginning flow run").wait_for()  # the run has loaded, not just the page's skeleton
            page.get_by_role("button", name="Open menu").first.click()
            resume = page.get_by_role("menuitem", name="Resume")
            resume.wait_for()
            page.screenshot(path=out / "paused-run.png")
            resume.click()
            page.get_by_role("dialog").get_by_text("Decide on each draft").wait_for()
            page.screenshot(path=out / "resume-form.png")
            shrink(out / "paused-run.png")
            shrink(out / "resume-form.png")
        finally:
            browser.close()
    print(f"paused-run.png, resume-form.png ({url})")


def take(chromium: str, out: Path, folder: Path, config: Path, zone: str) -> None:
    """Serve ``config``, drive its runs and photograph the pages into ``out``.

    Raises NotReached when a process dies or a run does not reach its state; SystemExit as ``screenshot`` does.
    """
    with start_prefect(folder) as server, start_carecast_serve(config, server) as serve:
        api = server.api
        api.finished(api.start("ingest", "oakview-pt-sources"), process=serve, timeout=RUN_TIMEOUT)
        newsletter_run = api.start("publish", "oakview-pt-newsletter")
        api.finished(newsletter_run, process=serve, timeout=RUN_TIMEOUT)
        x_run = api.start("publish", "oakview-pt-x")
        api.finished(x_run, "PAUSED", process=serve, timeout=RUN_TIMEOUT)
        ui = api.url.removesuffix("/api") + "/v2"
        pages = {
            "paused-run-artifacts.png": (f"/runs/flow-run/{x_run}?tab=Artifacts", WINDOW),
            "draft-preview.png": (f"/artifacts/artifact/{artifact(api, x_run, '-draft-')}", WINDOW),
            "newsletter-preview.png": (f"/artifacts/artifact/{artifact(api, newsletter_run, '-newsletter-')}", WINDOW),
            # Taller, so that the list under the chart shows every run.
            "runs.png": ("/runs", (1400, 1150)),
        }
        for name, (path, window) in pages.items():
            screenshot(chromium, ui + path, out / name, window, zone, folder)
        resume_pictures(chromium, f"{ui}/runs/flow-run/{x_run}", out, zone)
        if server.process.poll() is not None:
            raise SystemExit(f"the Prefect server exited with {server.process.returncode} during the screenshots")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="carecast-") as scratch:
        folder = Path(scratch)
        config = practice_copy(folder)
        zone = yaml.safe_load(config.read_text())["practice"]["timezone"]
        try:
            take(args.chromium, args.out, folder, config, zone)
        except NotReached as exc:
            raise SystemExit(str(exc)) from exc


if __name__ == "__main__":
    main()
