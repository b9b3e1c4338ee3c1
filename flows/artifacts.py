"""What staff read in the Prefect UI: a preview of each draft under review (possible PHI highlighted in a held one),
what a run published where, the newsletter as it went out, the audit of the run's messages, and the calendar of
the next 14 days of slots with the drafts waiting for them.

Artifact keys start with the practice's slug, so several practices on one server keep their own history.
"""

from __future__ import annotations

import base64
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, cast
from urllib.parse import urlsplit
from uuid import UUID

from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey

from carecast import pipeline as core
from carecast.audit import audit
from carecast.config import Settings
from carecast.ledger import Ledger, StoredDraft
from carecast.phi import Finding, draft_texts, highlight
from carecast.snapshot import PHONE_WIDTH, phone_picture


def slug(settings: Settings) -> str:
    """The practice's slug as an artifact key prefix: lowercase letters, digits and dashes."""
    return settings.slug or "practice"


#: Keys asked of the server at once: its default page limit (PREFECT_API_DEFAULT_LIMIT).
KEYS_PER_QUERY = 200


def artifact_page(artifact_id: UUID) -> str:
    """The Prefect UI's address of one artifact, relative to the server (its v2 UI): the preview itself, where
    the key's page (``/v2/artifacts/key/...``) lists its versions and needs one click more."""
    return f"/v2/artifacts/artifact/{artifact_id}"


def preview_links(settings: Settings, draft_ids: Collection[int]) -> dict[int, str]:
    """The address of each draft's latest preview (:func:`artifact_page`), for the drafts that have one (previews
    are made by review and publish runs). Raises PrefectHTTPStatusError when the Prefect API refuses the query."""
    keys = {f"{slug(settings)}-draft-{draft_id}": draft_id for draft_id in draft_ids}
    names = sorted(keys)
    links: dict[int, str] = {}
    with get_client(sync_client=True) as client:
        for start in range(0, len(names), KEYS_PER_QUERY):
            chunk = names[start : start + KEYS_PER_QUERY]
            found = client.read_latest_artifacts(
                artifact_filter=ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=chunk)),
                limit=len(chunk),
            )
            links.update({keys[collection.key]: artifact_page(collection.latest_id) for collection in found})
    return links


def local(settings: Settings, moment: datetime | None) -> str:
    """A UTC moment as staff read it, in the practice's zone; 'every run' for a channel without slots."""
    if moment is None:
        return "every run (no schedule)"
    return f"{moment.astimezone(settings.practice.zone):%a %d %b %Y %H:%M %Z}"


def held_markdown(stored: StoredDraft, findings: Sequence[Finding]) -> list[str]:
    """Why a held draft is held: each finding, and each text with the matched words highlighted."""
    texts = draft_texts(stored.draft)
    lines = [
        "## Held: possible PHI",
        "",
        "This draft names what looks like a patient's health information or personal contact details, and no "
        "authorization on file covers it. Fix the text (edit it in the form, or the item) or release it with a "
        "reason: choose **approve** in the form and give the reason, or "
        f'`carecast release {stored.id} --reason "..."`.',
        "",
        *(f"- {finding.summary}" for finding in findings),
        "",
    ]
    for where in dict.fromkeys(finding.where for finding in findings):
        spans = [span for finding in findings if finding.where == where for span in finding.spans]
        lines += [
            f"**{where}:**",
            "",
            *(f"> {line}" for line in highlight(texts.get(where, ""), spans).splitlines()),
            "",
        ]
    return lines


def draft_markdown(
    settings: Settings, stored: StoredDraft, title: str, slot: datetime | None, findings: Sequence[Finding] = ()
) -> str:
    """A draft as staff review it: why it is held (``findings``, highlighted), then the rendered email, or each
    post's text with its measures."""
    draft = stored.draft
    lines = [
        f"# Draft {stored.id} for {stored.channel}: {title}",
        "",
        f"**Goes out at:** {local(settings, slot)}, if approved by then (late policy: "
        f"within {settings.channels[stored.channel].late.send_within} of the slot).",
        "",
        "Approve, edit or reject it in the form of the paused run (**Resume**), or with "
        f"`carecast approve {stored.id}` / `carecast reject {stored.id} --reason ...`.",
        "",
    ]
    if findings:
        lines += held_markdown(stored, findings)
    if draft.subject:
        lines += [f"**Subject:** {draft.subject}", ""]
    if draft.preheader:
        lines += [f"**Preheader:** {draft.preheader}", ""]
    if draft.html:
        lines += ["---", "", *email_preview(draft.html, draft.text), ""]
    else:
        for number, part in enumerate(draft.parts, start=1):
            lines += [f"**Post {number} of {len(draft.parts)}**", "", "```text", part, "```", ""]
    # What goes out beside the text (a link card, a photo) is part of what staff approve.
    if draft.image_url:
        described = f" ({draft.image_alt})" if draft.image_alt else ""
        lines += [
            f"![{draft.image_alt or 'the picture'}]({draft.image_url})",
            "",
            f"**Image:** {draft.image_url}{described}",
            "",
        ]
    if draft.link:
        lines += [f"> **Link card:** [{title}]({draft.link})  ", f"> {urlsplit(draft.link).netloc}", ""]
        lines += [f"**Link:** {draft.link}", ""]
    if summary := core.describe_measures(draft):
        lines += [f"**Measured:** {summary}"]
    return "\n".join(lines)


def email_preview(html: str, text: str) -> list[str]:
    """An email as a patient sees it on a phone: a 375 px picture (inline, so it needs no other server), or, without
    Chromium, its plain-text part; never its raw markup."""
    picture = phone_picture(html)
    if picture is None:
        return ["*The email's text (install Chromium for a picture of it on a phone):*", "", "```text", text, "```"]
    encoded = base64.b64encode(picture).decode()
    return [f"![The email on a phone, {PHONE_WIDTH} px wide](data:image/jpeg;base64,{encoded})"]


def draft_previews(
    settings: Settings, ledger: Ledger, waiting: Sequence[tuple[StoredDraft, datetime | None]]
) -> dict[int, str]:
    """One markdown artifact per draft waiting for approval, keyed ``<practice>-draft-<id>``; each draft's preview
    address (:func:`artifact_page`)."""
    links = {}
    for stored, slot in waiting:
        title = core.title_of(ledger.items(stored.draft.item_ids))
        findings = held_findings(ledger, stored)
        created = create_markdown_artifact(
            draft_markdown(settings, stored, title, slot, findings),
            key=f"{slug(settings)}-draft-{stored.id}",
            description=f"{stored.channel} draft {stored.id}, "
            f"{'held for possible PHI' if findings else 'waiting for approval'}: {title}",
        )
        # Called from synchronous code, Prefect's dispatcher has run it to the end: an id, not a coroutine.
        links[stored.id] = artifact_page(cast(UUID, created))
    return links


def held_findings(ledger: Ledger, stored: StoredDraft) -> list[Finding]:
    """What holds a held draft (its latest hold's findings); nothing for a draft that is not held."""
    holds = ledger.holds(stored.id) if stored.state == "held" else []
    return holds[-1].findings if holds else []


def run_report(
    settings: Settings,
    ledger: Ledger,
    rows: Sequence[dict[str, Any]],
    channels: Sequence[str],
    started: datetime | None = None,
) -> None:
    """After a run: the table of what happened where, the newsletter as sent, the audit of the messages since
    ``started`` (the run's start). The calendar is refreshed beside it (flows/calendar.py)."""
    prefix = slug(settings)
    # A draft's rows follow it through the run (waiting, approved, published): the table keeps its last state.
    latest = {(row["channel"], tuple(row.get("items", ()))): row for row in rows}
    table = [
        {
            "channel": row["channel"],
            "item": row["title"],
            "state": row["state"],
            "where / why": row["detail"],
            "items": ", ".join(row["items"]),
        }
        for row in latest.values()
        if row["state"] not in ("preview",)
    ]
    create_table_artifact(
        table
        or [{"channel": ", ".join(channels), "item": "", "state": "nothing to do", "where / why": "", "items": ""}],
        key=f"{prefix}-published",
        description=f"{settings.practice.name}: what this run published where (outbox paths or provider links)",
    )
    for row in rows:
        if row.get("html") and row["state"] in ("published", "preview"):
            preview = "\n".join(email_preview(row["html"], row["preview"] or ""))
            create_markdown_artifact(
                f"# {row['subject'] or row['title']}\n\n{row['detail']}\n\n---\n\n{preview}",
                key=f"{prefix}-newsletter-{row['channel']}",
                description=f"{row['channel']} as {'sent' if row['state'] == 'published' else 'it would be sent'}",
            )
    if started is not None:
        record = [row.cells() for row in audit(settings, ledger, since=started)]
        create_table_artifact(
            record or [{"when": "", "event": "no message was sent, skipped or suppressed in this run"}],
            key=f"{prefix}-audit",
            description=f"{settings.practice.name}: every message of this run, with the consent it relied on "
            "(carecast audit)",
        )
