"""The marketing coordinator's day in the Prefect UI, in a real browser: headless Chromium (Debian's ``chromium``)
driven over the DevTools protocol (tests/cdp.py) against a real ``prefect server`` (its UI on) and ``carecast
serve`` of the sample practice, in which LinkedIn is under review, a story names a patient's health (held on X and
Mastodon) and the newsletter's subject limit refuses every digest.

The steps of the README's "For marketing staff": find the calendar among the artifacts, start the review
deployment from its page ahead of any slot, open its Resume form, approve one LinkedIn draft with an edit, reject
the other with a reason, release the held X draft with a reason and a name, then see each outcome in the calendar
and, once X's publish run has sent, in its published table. Each step is photographed; with ``CARECAST_SCREENSHOTS``
set to a folder (docs/screenshots), the pictures are written there for the README.

Skipped without ``chromium`` (failed instead when ``CI=true``).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from carecast.ledger import Ledger
from carecast.practice import load_settings
from tests.cdp import Page, browser
from tests.conftest import write_config
from tests.prefect_server import Api, PrefectServer, start_carecast_serve, start_prefect, wait_for

pytestmark = pytest.mark.prefect

STORY = (
    "---\ntitle: Welcome back, John Smith\ndate: 2026-11-20\nkind: recognition\n---\n"
    "John Smith is back on the court after his ACL reconstruction.\n"
)
ZONE = "America/Chicago"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PrefectServer, Path]]:
    if shutil.which("chromium") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("needs chromium: apt-get install chromium")
        pytest.skip("needs chromium: apt-get install chromium")
    folder = tmp_path_factory.mktemp("browser")
    config = write_config(folder, {"channels": {"newsletter": {"max_subject_length": 20}}})
    (config.parent / "content" / "2026-11-20-welcome-back.md").write_text(STORY)
    # The UI on, the scheduler off: only the steps below start runs.
    with (
        start_prefect(folder, PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false") as server,
        start_carecast_serve(config, server),
    ):
        yield server, config


class Steps:
    """The browser, the UI's address, and where each step's picture goes."""

    def __init__(self, page: Page, ui: str, out: Path) -> None:
        self.page, self.ui, self.out = page, ui, out

    def shot(self, name: str, height: int | None = None) -> None:
        time.sleep(1)  # the UI fades dialogs and menus in
        self.page.screenshot(self.out / name, height)

    def latest_artifact(self, key: str, waits_for: str) -> None:
        """Open the newest version of the artifact ``key`` from its page, as staff do from *Artifacts*."""
        self.page.open(f"{self.ui}/v2/artifacts/key/{key}")
        self.page.wait_for_text(f"Created {key}")
        self.page.click_link("/artifacts/artifact/")
        self.page.wait_for_text(waits_for)


def field_script(draft_id: int) -> str:
    """JavaScript: the box of draft ``draft_id``'s fields in the Resume form (the smallest element naming it and
    holding one decision)."""
    return f"""(() => {{
        const dialog = document.querySelector("[role=dialog]");
        const named = [...dialog.querySelectorAll("div")].filter(e =>
            e.innerText.includes("#{draft_id}:") &&
            e.querySelectorAll('button[aria-label="Select Decision"]').length === 1);
        return named.length ? named[named.length - 1] : null;
    }})()"""


def open_resume_form(page: Page) -> None:
    """Open the run's menu and its Resume form, again while the form does not show: the menu opens with an
    animation that takes clicks only once it is done, later on a loaded machine."""
    form = "document.querySelectorAll('[role=dialog] textarea').length >= 9"
    deadline = time.monotonic() + 120
    while True:
        if not page.evaluate("!!document.querySelector('[role=dialog]')"):
            if not page.evaluate("!!document.querySelector('[role=menuitem]')"):
                page.click("Open menu")
            time.sleep(1)
            page.click("Resume")
        try:
            page.wait_for(form, "the review form", timeout=15)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise


def resume(page: Page, api: Api, run_id: str) -> None:
    """Press the form's Resume until the run leaves its pause: on a loaded machine a click may land while the
    dialog still animates, and is lost."""
    deadline = time.monotonic() + 120
    while True:
        if page.evaluate("!!document.querySelector('[role=dialog]')"):
            page.click("Resume", "[role=dialog] button")
        time.sleep(3)
        if api.flow_run(run_id)["state"]["type"] != "PAUSED" or time.monotonic() > deadline:
            return


def decide(page: Page, draft_id: int, choice: str, *, text: str = "", reason: str = "", by: str = "") -> None:
    """Set draft ``draft_id``'s decision in the open Resume form, and its text, reason and name when given."""
    box = field_script(draft_id)
    page.wait_for(f"{box} !== null", f"the form's fields of draft {draft_id}")
    page.evaluate(f"{box}.setAttribute('data-test-draft', '{draft_id}')")
    scope = f"[data-test-draft='{draft_id}']"
    chosen = f"document.querySelector(`{scope} button[aria-label='Select Decision']`).innerText.trim()"
    # The list animates in, and a click before it is done is lost (later still on a loaded machine): open it and
    # click the choice again until the form shows it, within a generous deadline.
    deadline = time.monotonic() + 90
    while True:
        if not page.evaluate("document.querySelectorAll('[role=option]').length"):
            page.click("Select Decision", f"{scope} button")
            page.wait_for("document.querySelectorAll('[role=option]').length", "the decision's choices")
        time.sleep(0.5)
        page.click(choice, "[role=option]")
        try:
            page.wait_for(f"{chosen} === {choice!r}", f"draft {draft_id}'s decision {choice}", timeout=5)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
    # The list may stay open, and would swallow the next click: close it (Escape closes the topmost layer only).
    try:
        page.wait_for("!document.querySelector('[role=option]')", "the choices to close", timeout=2)
    except AssertionError:
        page.key("Escape")
        page.wait_for("!document.querySelector('[role=option]')", "the choices to close", timeout=10)
    for index, value in ((0, text), (1, reason), (2, by)):
        if value:
            page.fill_nth(f"{scope} textarea", index, value)


@pytest.mark.timeout(900)  # a server with its UI, a browser, five runs: minutes on a loaded machine
def test_a_coordinator_decides_ahead_of_the_slot_in_the_prefect_ui(
    served: tuple[PrefectServer, Path], tmp_path: Path
) -> None:
    server, config = served
    api: Api = server.api
    settings = load_settings(config)
    out = Path(os.environ.get("CARECAST_SCREENSHOTS") or tmp_path)
    # The held story fails the ingest run, so that staff hear of it at once (the failure route).
    api.finished(api.start("ingest", "oakview-pt-sources"), "FAILED", timeout=240)
    ledger = Ledger(settings.ledger_url())
    try:
        edited, rejected = ledger.drafts("linkedin", states=["pending"])
        held = next(d for d in ledger.drafts("x", states=["held"]))
        (refused,) = ledger.drafts("newsletter", states=["refused"])
    finally:
        ledger.close()
    ui = api.url.removesuffix("/api")
    with browser(ZONE, (1400, 1400)) as page:
        steps = Steps(page, ui, out)
        # 1. The calendar, among the artifacts: what goes out, day by day, and what waits for a decision.
        page.open(f"{ui}/v2/artifacts")
        page.wait_for_text("oakview-pt-calendar")
        steps.latest_artifact("oakview-pt-calendar", "the next 14 days")
        page.wait_for_text("(waiting)")
        page.wait_for_text("(held)")
        page.wait_for_text("(refused)")
        steps.shot("calendar.png", 1500)

        # 2. The review deployment, run from its page ahead of any slot: Run, then Quick run.
        review = api.deployment("review", "oakview-pt")
        page.open(f"{ui}/v2/deployments/deployment/{review['id']}")
        page.wait_for_text("oakview-pt")
        steps.shot("review-deployment.png")
        page.click("Run")
        page.click("Quick run")
        query = {"flow_runs": {"deployment_id": {"any_": [review["id"]]}}}
        run_id = wait_for("the review run", lambda: [r["id"] for r in api("POST", "/flow_runs/filter", query)], 60)[0]
        api.finished(run_id, "PAUSED", timeout=240)

        # 3. Its Resume form: every draft waiting, held or refused, with why.
        page.open(f"{ui}/v2/runs/flow-run/{run_id}")
        page.wait_for_text("Suspended", timeout=120)
        open_resume_form(page)
        page.wait_for_text(f"#{refused.id}")
        page.wait_for_text("subject")
        steps.shot("review-form.png")
        decide(page, edited.id, "approve", text="Edited in the Prefect UI, ahead of the slot.")
        decide(page, rejected.id, "reject", reason="not for referring physicians")
        decide(page, held.id, "release", reason="AUTH-2026-0199 on file", by="Jo")
        steps.shot("review-decided.png")
        resume(page, api, run_id)
        api.finished(run_id, timeout=240)
        name = api.flow_run(run_id)["name"]
        assert name == "review: 1 released, 1 approved, 1 rejected; 1 refused (see why)", name

        # 4. The outcome in the calendar, then in X's published table once its publish run has sent.
        steps.latest_artifact("oakview-pt-calendar", "the next 14 days")
        page.wait_for_text("(approved)")
        steps.shot("calendar-after.png", 1500)
        api.finished(api.start("publish", "oakview-pt-x"), timeout=240)
        steps.latest_artifact("oakview-pt-published", "Welcome back, John Smith")
        steps.shot("published.png")
        table = page.evaluate("document.body.innerText")
        assert "Welcome back, John Smith" in table and "waiting" not in table
    ledger = Ledger(settings.ledger_url())
    try:
        assert ledger.draft(edited.id).draft.parts == ("Edited in the Prefect UI, ahead of the slot.",)
        assert (ledger.draft(rejected.id).state, ledger.draft(rejected.id).reason) == (
            "rejected",
            "not for referring physicians",
        )
        [hold] = ledger.holds(held.id)
        assert (hold.released_by, hold.release_reason) == ("Jo", "AUTH-2026-0199 on file")
        published = [r for r in ledger.publications() if r.channel == "x" and held.draft.item_ids[0] in r.item_ids]
        assert [r.state for r in published] == ["sent"]
    finally:
        ledger.close()
    pictures = {"calendar.png", "review-deployment.png", "review-form.png", "review-decided.png"}
    assert pictures | {"calendar-after.png", "published.png"} <= {path.name for path in out.glob("*.png")}
