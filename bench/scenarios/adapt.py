"""Adapt scenarios: long items threaded for X, refused items on a rerun, every channel at once."""

from __future__ import annotations

import shutil
import sqlite3
from typing import Any, ClassVar

from bench.scenarios.base import (
    CHUNK,
    Scenario,
)
from bench.scenarios.content import (
    long_items,
    long_text,
)


class AdaptX(Scenario):
    """Adapt ``size`` long items for X: each becomes a numbered thread (split_to_fit)."""

    name = "adapt-x"
    unit = "long items"
    sizes: ClassVar[dict[str, int]] = {"full": 300, "default": 300, "quick": 4}
    baseline_says = "render the template, measure once per item (twitter-text)"
    x_changes: ClassVar[dict[str, Any]] = {}

    #: Sentences per item: about 1,000 characters, a thread of four posts.
    sentences: ClassVar[int] = 14

    def prepare(self, feeds: dict[str, bytes]) -> None:
        self.write_config({"channels": {"x": {"max_items_per_run": self.size, **self.x_changes}}})
        _, ledger = self.settings_and_ledger()
        ledger.upsert_items(long_items(self.size, sentences=self.sentences))
        ledger.close()
        self.save_template()

    def carecast(self) -> dict[str, float]:
        from carecast.pipeline import adapt

        settings, ledger = self.settings_and_ledger()
        adapt(settings, ledger, "x")
        ledger.close()
        return {}

    def baseline(self) -> dict[str, float]:
        import jinja2
        from twitter_text import parse_tweet

        template = jinja2.Template("{{ item }}: {{ body }} {{ link }}")
        for n in range(self.size):
            body = long_text(n, self.sentences)
            parse_tweet(template.render(item=f"Desk stretches, part {n}", body=body, link="https://x.co/a"))
        return {}


class AdaptXTwiceAsLong(AdaptX):
    """``adapt-x`` with items twice as long (threads of eight posts) and half as many: the same text in all, so a
    linear adapt takes the time ``adapt-x`` takes."""

    name = "adapt-x-twice-as-long"
    sizes: ClassVar[dict[str, int]] = {"full": 150, "default": 150, "quick": 2}
    x_changes: ClassVar[dict[str, Any]] = {"max_thread_parts": 10}
    sentences = 28


class AdaptRefusedRerun(AdaptX):
    """A run with nothing new after ``size`` items were refused on X (too long for a 2-post thread)."""

    name = "adapt-refused-rerun"
    baseline_says = "the SQL query for what is unpublished"
    x_changes: ClassVar[dict[str, Any]] = {"max_thread_parts": 2}

    def prepare(self, feeds: dict[str, bytes]) -> None:
        super().prepare(feeds)
        AdaptX.carecast(self)  # the first run refuses every item
        self.save_template()

    def baseline(self) -> dict[str, float]:
        with sqlite3.connect(self.ledger_file) as db:
            db.execute(
                "select id from items where id not in (select item_id from publication_items where channel = 'x')"
            ).fetchall()
        return {}


class AdaptEveryChannel(Scenario):
    """Adapt ``size`` long items (each with a picture) for every channel the sample config knows: nine channels, SMS
    included (each post shortened to its segments)."""

    name = "adapt-every-channel"
    unit = "long items"
    sizes: ClassVar[dict[str, int]] = {"full": 300, "default": 100, "quick": 2}
    baseline_says = "render each channel's template, measure once per item (twitter-text, SMS segments, length)"
    # Every channel's plugin imported before the clock, as the worker does for the three it preloads: a run's cost
    # is not its imports (atproto's models alone take ~0.5 s), which a long-lived worker pays once.
    preload = (
        "carecast.pipeline",
        *(f"carecast_channels.{name}" for name in ("newsletter", "x", "sms", "mastodon", "linkedin", "facebook")),
        *(f"carecast_channels.{name}" for name in ("instagram", "gbp", "bluesky")),
    )

    def prepare(self, feeds: dict[str, bytes]) -> None:
        from tests.conftest import all_channels_config, commented_channels

        enabled = ("newsletter", "x", "sms", "mastodon", "linkedin")
        sample = commented_channels()["channels"] | {name: {} for name in enabled}
        # Long items thread on X and Bluesky; no channel sends more than it allows in one run.
        every = {name: {"max_items_per_run": self.size, "max_thread_parts": 10} for name in ("x", "bluesky")}
        rest: dict[str, dict[str, Any] | None] = {name: {"max_items_per_run": self.size} for name in sample}
        rest = {name: changes for name, changes in rest.items() if name not in every}
        rest["sms"] = {"max_items_per_run": self.size, "sources": None}  # SMS takes the blog posts too
        rest["linkedin"] = {"max_items_per_run": self.size, "sources": None}
        # One channel of each of the nine types: the sample's second newsletters and campaign text are left out.
        rest |= dict.fromkeys(("provider-update", "reactivation-email", "reactivation-text"))
        ledger = {"url": f"sqlite:///{self.ledger_file}", "delivery_chunk": CHUNK}
        shutil.rmtree(self.workdir / "config", ignore_errors=True)
        outbox = str(self.workdir / "outbox")
        all_channels_config(self.workdir, {"ledger": ledger, "outbox": outbox, "channels": every | rest})
        _, store = self.settings_and_ledger()
        store.upsert_items(long_items(self.size, image="https://www.oakviewpt.com/images/stretch.jpg"))
        store.close()
        self.save_template()

    def carecast(self) -> dict[str, float]:
        from carecast.pipeline import adapt

        settings, ledger = self.settings_and_ledger()
        for instance in settings.channels:
            outcomes = adapt(settings, ledger, instance)
            assert all(outcome.state == "drafted" for outcome in outcomes), [o.detail for o in outcomes][:3]
        ledger.close()
        return {}

    def baseline(self) -> dict[str, float]:
        import jinja2
        from twitter_text import parse_tweet

        from carecast.text import sms_measure

        template = jinja2.Template("{{ item }}: {{ body }} {{ link }}")
        for n in range(self.size):
            text = template.render(item=f"Desk stretches, part {n}", body=long_text(n), link="https://x.co/a")
            parse_tweet(text)
            sms_measure(text)
            for _ in range(7):  # newsletter, Mastodon, Facebook, Instagram, LinkedIn, GBP, Bluesky: a length each
                len(template.render(item=f"Desk stretches, part {n}", body=long_text(n), link="https://x.co/a"))
        return {}
