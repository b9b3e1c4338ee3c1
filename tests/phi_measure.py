"""Measure the PHI check on a labelled set through the pipeline's own call, as the reviewers do.

Each sentence of a set (``tests/data/phi_heldout.yaml``, ``tests/data/phi_tuning.yaml``) becomes a content item of
the sample practice (its text the summary; its thread parts paragraphs; its alt text the image's; its caption a
figure caption; its link-card or event title the item's title; its ``patient`` a written authorization naming
them), every channel of the sample config (the commented-out ones too) renders its draft, and the pipeline's PHI
decision (:func:`carecast.pipeline.phi_findings`) says whether the draft is held. A sentence counts as found on a
channel when its draft there is held; a channel that cannot render it (Instagram without an image) does
not count.

Run ``python -m tests.phi_measure tests/data/phi_heldout.yaml`` for the table and the misses.
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

import yaml

from carecast import pipeline
from carecast.channel import make_channel
from carecast.config import Settings
from carecast.errors import RenderError
from carecast.html import html_to_text
from carecast.model import ContentItem, content_hash
from carecast.practice import load_settings
from tests.conftest import commented_channels, write_config

PUBLISHED = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


@dataclass
class Score:
    """Counts of one channel (or of all): true/false positives and negatives, and the texts it got wrong."""

    counts: Counter[str] = field(default_factory=Counter)
    missed: list[str] = field(default_factory=list)
    false_alarms: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.counts["tp"] / max(1, self.counts["tp"] + self.counts["fn"])

    @property
    def precision(self) -> float:
        return self.counts["tp"] / max(1, self.counts["tp"] + self.counts["fp"])


def load_set(file: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The practice context (staff, partners) and the labelled sentences of ``file``."""
    data = yaml.safe_load(file.read_text(encoding="utf-8"))
    return data.get("practice") or {}, data["sentences"]


def practice_settings(project: Path, context: dict[str, Any]) -> Settings:
    """The sample practice with every channel enabled and the set's staff and partners taught to it."""
    changes = commented_channels()
    changes["practice"] = {key: value for key, value in context.items() if key in ("staff", "partners")}
    return load_settings(write_config(project, changes))


def item_for(number: int, row: dict[str, Any], channels: list[str]) -> ContentItem:
    """The content item a sentence stands for (see the module's docstring)."""
    paragraphs = row.get("parts") or [row["text"]]
    html = "".join(f"<p>{escape(part)}</p>" for part in paragraphs)
    if row.get("caption"):
        html += f"<figure><figcaption>{escape(row['caption'])}</figcaption></figure>"
    title = row.get("title") or row.get("link_title") or row.get("event_title") or "News from Oakview PT"
    patient = row.get("patient")
    authorized = (
        {
            "mentions_patient": True,
            "patient": patient,
            "authorized_channels": tuple(channels),
            "authorization_expires": PUBLISHED + timedelta(days=3650),
            "kind": "recognition",
        }
        if patient
        else {}
    )
    return ContentItem(
        id=f"rss:blog:sentence-{number}",
        source="blog",
        kind=authorized.pop("kind", "post"),
        title=title,
        url=f"https://www.oakviewpt.com/blog/sentence-{number}",
        summary_html=html,
        summary_text=html_to_text(html),
        published=PUBLISHED,
        content_hash=content_hash(html + title),
        image_url="https://www.oakviewpt.com/img/photo.jpg" if row.get("alt") else None,
        image_alt=row.get("alt"),
        **authorized,
    )


def measure(file: Path) -> dict[str, Score]:
    """The score of each channel, and of all of them (``"all"``: every sentence on every channel)."""
    context, rows = load_set(file)
    with tempfile.TemporaryDirectory() as project:
        settings = practice_settings(Path(project), context)
        channels = sorted(settings.channels)
        patients = sorted({row["patient"] for row in rows if row.get("patient")})
        check = pipeline.PhiCheck.for_practice(settings, patients)
        scores = {name: Score() for name in [*channels, "all"]}
        made = {name: make_channel(settings, name) for name in channels}
        for number, row in enumerate(rows):
            item = item_for(number, row, channels)
            for name in channels:
                try:
                    draft = made[name].render([item])
                except RenderError:
                    continue  # e.g. Instagram without an image: no draft, nothing to check
                held = bool(pipeline.phi_findings(check, draft, [item]))
                outcome = ("t" if held == row["phi"] else "f") + ("p" if held else "n")
                for score in (scores[name], scores["all"]):
                    score.counts[outcome] += 1
                    if outcome == "fn":
                        score.missed.append(f"{name}: {row['text']}")
                    elif outcome == "fp":
                        score.false_alarms.append(f"{name}: {row['text']}")
    return scores


def main(argv: list[str]) -> None:
    """Print each channel's recall and precision on the set ``argv[0]``, then (with ``-v``) what went wrong."""
    scores = measure(Path(argv[0]))
    for name, score in scores.items():
        print(f"{name:10} recall {score.recall:.3f} precision {score.precision:.3f} {dict(score.counts)}")
    if "-v" in argv:
        print("\nmissed:", *sorted(set(scores["all"].missed)), sep="\n  ")
        print("\nfalse alarms:", *sorted(set(scores["all"].false_alarms)), sep="\n  ")


if __name__ == "__main__":
    main(sys.argv[1:])
