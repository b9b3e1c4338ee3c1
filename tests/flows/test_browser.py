"""The marketing coordinator's day in the Prefect UI, in a real browser: headless Chromium (Debian's ``chromium``)
driven over the DevTools protocol (tests/cdp.py) against a real ``prefect server`` (its UI on) and ``carecast
serve`` of the sample practice, in which LinkedIn is under review, a story names a patient's health (held on X and
Mastodon) and the newsletter's subject limit refuses every digest.

The steps of the README's "For marketing staff", in its order: open the UI, *Deployments* (one entry per job),
a deployment's schedule, its **Run → Custom run** form; the calendar among the artifacts, there since ``carecast
serve`` started (before any other run); the ingest run red with why (a new hold) and the practice told through the
default route (the outbox, no webhook set), the refusal too; then deciding ahead of the slot: start the review
deployment from its page, open its Resume form, approve one LinkedIn draft with an edit, reject the other with a
reason, release the held X draft with a reason and a name; then each outcome in the calendar (a preview link opens
the preview itself), and, once X's publish run has sent, its *Artifacts* and its published table. Each step is
photographed; with ``CARECAST_SCREENSHOTS`` set to a folder (docs/screenshots), the pictures are written there for
the README.

Skipped without ``chromium`` (failed instead when ``CI=true``).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from carecast.alerts import NOTIFICATIONS
from carecast.ledger import Ledger
from carecast.practice import load_settings
from tests.cdp import Page, browser, shrink
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
        shrink(self.page.screenshot(self.out / name, height))

    def scheduled(self, api: Api) -> None:
        """*What is scheduled*: the UI's first page, *Deployments*, the newsletter's schedule, its Custom run form."""
        self.page.open(f"{self.ui}/")
        self.page.wait_for_text("Dashboard")
        self.page.click("Deployments", "a")
        for name in ("oakview-pt-newsletter", "review", "publish", "schedules"):
            self.page.wait_for_text(name)
        self.shot("deployments.png")
        self.page.click("oakview-pt-newsletter", "a")
        self.page.wait_for_text("At 10:00 AM, only on Tuesday")  # "newsletter Tuesdays 10:00"
        self.shot("deployment-schedules.png")
        self.page.click("Run")
        self.page.click("Custom run")
        for field in ("practice (Optional)", "channels (Optional)", "items (Optional)", "dry_run (Optional)"):
            self.page.wait_for_text(field)
        self.shot("custom-run.png")

    def told(self, api: Api, run_id: str, outbox: Path) -> None:
        """*When something fails*: the run is red, its state message says why (a new hold for possible PHI), and
        the practice was told by the default route, the outbox (no webhook set): of the hold and of the refusal."""
        self.page.open(f"{self.ui}/v2/runs/flow-run/{run_id}")
        self.page.wait_for_text("Failed")
        deadline = time.monotonic() + 90
        while True:  # the tab opens on Logs; a click while the page still draws is lost: again until it shows
            self.page.click("Details", "[role=tab]")
            try:
                self.page.wait_for_text("State Message", timeout=10)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
        self.page.wait_for_text("held for possible PHI")
        self.shot("failed-run.png")
        notices = [path.read_text() for path in outbox.glob("*.eml")]
        assert any("held for possible PHI" in notice for notice in notices), notices
        assert any("subject has" in notice for notice in notices), notices

    def preview_from_calendar(self) -> None:
        """A preview link of the open calendar opens that preview itself (not the list of its versions)."""
        self.page.click("preview", "a")  # a held draft's: the page links this very artifact too, by its id
        self.page.wait_for_text("Held: possible PHI")
        assert "/v2/artifacts/artifact/" in self.page.evaluate("location.href")

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


def review_ahead_of_the_slot(steps: Steps, api: Api, drafts: dict[str, int]) -> str:
    """*Deciding ahead of the slot*: the review deployment run from its page, its Resume form filled; the run's id."""
    page = steps.page
    review = api.deployment("review", "oakview-pt")
    page.open(f"{steps.ui}/v2/deployments/deployment/{review['id']}")
    page.wait_for_text("oakview-pt")
    steps.shot("review-deployment.png")
    page.click("Run")
    page.click("Quick run")
    query = {"flow_runs": {"deployment_id": {"any_": [review["id"]]}}}
    run_id = wait_for("the review run", lambda: [r["id"] for r in api("POST", "/flow_runs/filter", query)], 60)[0]
    api.finished(run_id, "PAUSED", timeout=240)
    page.open(f"{steps.ui}/v2/runs/flow-run/{run_id}")
    page.wait_for_text("Suspended", timeout=120)
    open_resume_form(page)
    page.wait_for_text(f"#{drafts['refused']}")
    page.wait_for_text("subject has")  # why the newsletter was refused
    steps.shot("review-form.png")
    decide(page, drafts["edited"], "approve", text="Edited in the Prefect UI, ahead of the slot.")
    decide(page, drafts["rejected"], "reject", reason="not for referring physicians")
    decide(page, drafts["held"], "release", reason="AUTH-2026-0199 on file", by="Jo")
    steps.shot("review-decided.png")
    resume(page, api, run_id)
    api.finished(run_id, timeout=240)
    return run_id


def after_the_run(steps: Steps, api: Api) -> None:
    """*After a run*: X's publish run, its name, its *Artifacts* tab, its published table without a stale row."""
    run_id = api.start("publish", "oakview-pt-x")
    api.finished(run_id, timeout=240)
    assert api.flow_run(run_id)["name"].startswith("publish x: "), api.flow_run(run_id)["name"]
    steps.page.open(f"{steps.ui}/v2/runs/flow-run/{run_id}?tab=Artifacts")
    for key in ("oakview-pt-published", "oakview-pt-calendar", "oakview-pt-audit"):
        steps.page.wait_for_text(key)
    steps.shot("run-artifacts.png")
    steps.latest_artifact("oakview-pt-published", "Welcome back, John Smith")
    steps.shot("published.png")
    table = steps.page.evaluate("document.body.innerText")
    assert "Welcome back, John Smith" in table and "waiting" not in table


def check_ledger(config: Path, drafts: dict[str, int]) -> None:
    """The decisions as the ledger keeps them, and the released post sent once."""
    ledger = Ledger(load_settings(config).ledger_url())
    try:
        assert ledger.draft(drafts["edited"]).draft.parts == ("Edited in the Prefect UI, ahead of the slot.",)
        rejected = ledger.draft(drafts["rejected"])
        assert (rejected.state, rejected.reason) == ("rejected", "not for referring physicians")
        [hold] = ledger.holds(drafts["held"])
        assert (hold.released_by, hold.release_reason) == ("Jo", "AUTH-2026-0199 on file")
        item = ledger.draft(drafts["held"]).draft.item_ids[0]
        published = [r for r in ledger.publications() if r.channel == "x" and item in r.item_ids]
        assert [r.state for r in published] == ["sent"]
    finally:
        ledger.close()


def drafts_to_decide(config: Path) -> dict[str, int]:
    """The ids of the drafts the coordinator decides on: two LinkedIn drafts waiting, X's held one, the newsletter's
    refused one."""
    ledger = Ledger(load_settings(config).ledger_url())
    try:
        edited, rejected = ledger.drafts("linkedin", states=["pending"])
        held = next(d for d in ledger.drafts("x", states=["held"]))
        (refused,) = ledger.drafts("newsletter", states=["refused"])
    finally:
        ledger.close()
    return {"edited": edited.id, "rejected": rejected.id, "held": held.id, "refused": refused.id}


@pytest.mark.timeout(900)  # a server with its UI, a browser, five runs: minutes on a loaded machine
def test_a_coordinator_follows_the_readme_in_the_prefect_ui(served: tuple[PrefectServer, Path], tmp_path: Path) -> None:
    server, config = served
    api: Api = server.api
    settings = load_settings(config)
    out = Path(os.environ.get("CARECAST_SCREENSHOTS") or tmp_path)
    ui = api.url.removesuffix("/api")
    with browser(ZONE, (1400, 1400)) as page:
        steps = Steps(page, ui, out)
        steps.scheduled(api)
        # The calendar, among the artifacts, made as `carecast serve` started: no other run has happened yet.
        assert [r["name"] for r in api("POST", "/flow_runs/filter", {})] == ["calendar"]
        page.open(f"{ui}/v2/artifacts")
        page.wait_for_text("oakview-pt-calendar")
        steps.latest_artifact("oakview-pt-calendar", "the next 14 days")
        # The held story fails the ingest run, so that staff hear of it at once (the failure route).
        ingest = api.start("ingest", "oakview-pt-sources")
        api.finished(ingest, "FAILED", timeout=240)
        steps.told(api, ingest, settings.path(settings.outbox) / NOTIFICATIONS)
        drafts = drafts_to_decide(config)
        steps.latest_artifact("oakview-pt-calendar", "the next 14 days")
        for state in ("(waiting)", "(held)", "(refused)"):
            page.wait_for_text(state)
        steps.shot("calendar.png", 1500)
        run_id = review_ahead_of_the_slot(steps, api, drafts)
        name = api.flow_run(run_id)["name"]
        assert name == "review: 1 released, 1 approved, 1 rejected; 1 refused (see why)", name
        # The outcome in the calendar; Mastodon's copy of the story is still held, its preview a click away.
        steps.latest_artifact("oakview-pt-calendar", "the next 14 days")
        page.wait_for_text("(approved)")
        assert "(waiting)" not in page.evaluate("document.body.innerText")  # the rejected draft is gone
        steps.shot("calendar-after.png", 1500)
        steps.preview_from_calendar()
        after_the_run(steps, api)
    check_ledger(config, drafts)
    pictures = {"deployments.png", "deployment-schedules.png", "custom-run.png", "calendar.png", "failed-run.png"}
    pictures |= {"review-deployment.png", "review-form.png", "review-decided.png", "calendar-after.png"}
    assert pictures | {"run-artifacts.png", "published.png"} <= {path.name for path in out.glob("*.png")}
