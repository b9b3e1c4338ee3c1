"""Ingest scenarios: cold feeds, a 304, one new entry in a big feed, a feed growing run after run, whole web pages
as feed items."""

from __future__ import annotations

import copy
import hashlib
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from bench.scenarios.base import (
    Scenario,
)
from bench.scenarios.content import (
    baseline_db,
    rss_feed,
)
from tests.providers.feeds import etag


class IngestCold(Scenario):
    """Cold ingest: ``size`` feeds of 20 items each, nothing seen before."""

    name = "ingest-cold"
    unit = "feeds x 20 items"
    sizes: ClassVar[dict[str, int]] = {"full": 500, "default": 50, "quick": 2}
    baseline_says = "requests + default feedparser.parse + SQLite insert"
    items_per_feed = 20

    def sources(self) -> dict[str, str]:
        return {f"feed{n}": f"{self.servers.feed_url}/{self.name}/{n}.xml" for n in range(self.size)}

    def feed(self, number: int, name: str) -> bytes:
        """The feed ``name``, the ``number``-th."""
        return rss_feed(name, self.items_per_feed, first=number * 100)

    def prepare(self, feeds: dict[str, bytes]) -> None:
        for number, (name, url) in enumerate(self.sources().items()):
            feeds[url.removeprefix(self.servers.feed_url)] = self.feed(number, name)
        sources = {
            name: {"type": "rss", "url": url, "max_items": self.items_per_feed, "allow_private": True}
            for name, url in self.sources().items()
        }
        self.write_config({"sources": sources, "channels": {}})
        self.settings_and_ledger()[1].close()
        self.save_template()

    def carecast(self) -> dict[str, float]:
        from carecast.pipeline import ingest

        settings, ledger = self.settings_and_ledger()
        for source in self.sources():
            report = ingest(settings, ledger, source)
            assert report.error is None, report.error
        ledger.close()
        return {}

    def baseline(self) -> dict[str, float]:
        import feedparser
        import requests

        db = baseline_db(self.workdir / "baseline.db")
        with requests.Session() as session:
            for url in self.sources().values():
                parsed = feedparser.parse(session.get(url, timeout=10).content)
                bodies = [self.body(entry) for entry in parsed.entries]
                rows = [
                    (entry.id, entry.title, entry.link, body, hashlib.sha256(body.encode()).hexdigest())
                    for entry, body in zip(parsed.entries, bodies, strict=True)
                ]
                with db:
                    db.executemany("insert or ignore into items values (?, ?, ?, ?, ?)", rows)
        db.close()
        return {}

    def body(self, entry: Any) -> str:
        """What the baseline keeps of a parsed entry: its summary as the feed gives it."""
        return str(entry.summary)


class IngestNotModified(IngestCold):
    """The same feeds polled again, unchanged: the server answers 304 to the conditional GET."""

    name = "ingest-304"
    baseline_says = "requests conditional GET loop"

    def prepare(self, feeds: dict[str, bytes]) -> None:
        super().prepare(feeds)
        IngestCold.carecast(self)  # the first poll: the ledger keeps every feed's ETag
        self.save_template()
        etags = {url: etag(feeds[url.removeprefix(self.servers.feed_url)]) for url in self.sources().values()}
        (self.workdir / "etags.json").write_text(json.dumps(etags))

    def baseline(self) -> dict[str, float]:
        import requests

        etags = json.loads((self.workdir / "etags.json").read_text())  # what its first poll kept
        with requests.Session() as session:
            for url in self.sources().values():
                assert session.get(url, headers={"If-None-Match": etags[url]}, timeout=10).status_code == 304
        return {}


class IngestOneNew(IngestCold):
    """One feed of ``size`` items, polled again after one new entry: cost vs a cold poll of the same feed."""

    name = "ingest-one-new"
    unit = "items in the feed"
    sizes: ClassVar[dict[str, int]] = {"full": 2000, "default": 2000, "quick": 40}
    baseline_says = "default feedparser loop, whole feed (insert or ignore)"

    def sources(self) -> dict[str, str]:
        return {"big": f"{self.servers.feed_url}/{self.name}/big.xml"}

    def prepare(self, feeds: dict[str, bytes]) -> None:
        path = self.sources()["big"].removeprefix(self.servers.feed_url)
        feeds[path] = rss_feed("big", self.size - 1)
        self.items_per_feed = self.size
        sources = {"big": {"type": "rss", "url": self.sources()["big"], "max_items": self.size, "allow_private": True}}
        self.write_config({"sources": sources, "channels": {}})
        self.settings_and_ledger()[1].close()  # the empty ledger made before the clock starts, as in ingest-cold
        start = time.perf_counter()
        IngestCold.carecast(self)
        self.reference = ("a cold poll of the feed (in preparation, once)", time.perf_counter() - start)
        self.save_template()
        feeds[path] = rss_feed("big", self.size)  # one entry more, a new ETag


class IngestGrowing(Scenario):
    """A run of the core pipeline (audience, every source, adapt and publish every channel to the outbox; no
    Prefect) once the blog's feed of 20 posts has gained one: run ``size`` of a practice against its run 1."""

    name = "ingest-growing"
    unit = "runs, a feed of 20 gaining 1 post per run"
    sizes: ClassVar[dict[str, int]] = {"full": 100, "default": 100, "quick": 3}
    baseline_says = "CareCast's own run 1 (flat: ratio 1)"
    baseline_imports = "carecast"

    def practice(self, label: str) -> IngestGrowing:
        """The same scenario on the practice of folder ``label``: ``first`` is timed at run 1, ``last`` at run N."""
        other = copy.copy(self)
        other.workdir = self.workdir / label
        return other

    def prepare(self, feeds: dict[str, bytes]) -> None:
        # Recent posts: every channel's max_age_days keeps them candidates.
        start = datetime.now(UTC) - timedelta(hours=self.size + 30)
        for label, runs in (("first", 1), ("last", self.size)):
            practice = self.practice(label)
            practice.workdir.mkdir()
            path = f"/{self.name}/{label}.xml"
            practice.write_config({"sources": {"blog": {"url": self.servers.feed_url + path, "allow_private": True}}})
            for run in range(runs + 1):  # run 0 reads the first 20 posts; the last run is the one timed
                feeds[path] = rss_feed("blog", 20, first=run, start=start)
                if run < runs:
                    practice.run_pipeline()
            practice.save_template()

    def fresh(self) -> None:
        for label in ("first", "last"):
            Scenario.fresh(self.practice(label))

    def run_pipeline(self) -> None:
        from carecast import pipeline

        settings, ledger = self.settings_and_ledger()
        pipeline.sync_audience(settings, ledger)
        for source in settings.sources:
            report = pipeline.ingest(settings, ledger, source)
            assert report.error is None, report.error
        for channel in pipeline.channel_names(settings):
            pipeline.adapt(settings, ledger, channel)
            pipeline.publish(settings, ledger, channel)
        ledger.close()

    def carecast(self) -> dict[str, float]:
        self.practice("last").run_pipeline()
        return {}

    def baseline(self) -> dict[str, float]:
        self.practice("first").run_pipeline()
        return {}


class IngestPages(IngestCold):
    """Whole web pages as feed items, one feed each: the tuning pages of the Web Content Extraction Benchmark
    (``tests/corpus/wceb``, real pages with their menus, sidebars and footers), read into the document model
    (furniture and boilerplate dropped, trafilatura, the model built) against trafilatura's extraction alone."""

    name = "ingest-pages"
    unit = "whole pages"
    sizes: ClassVar[dict[str, int]] = {"full": 51, "default": 51, "quick": 2}
    baseline_says = "requests + default feedparser.parse + trafilatura.extract + SQLite insert"
    items_per_feed = 1
    preload = ("carecast.pipeline", "carecast.sources.rss", "trafilatura")
    baseline_imports = "pages"

    def feed(self, number: int, name: str) -> bytes:
        from tests.corpus.measure import feed_of_html, page_title
        from tests.corpus.wceb_eval import entries, page_html

        entry = entries("tuning")[number]
        html = page_html(entry)
        return feed_of_html(name, page_title(html) or name, html, str(entry["url"])).encode()

    def body(self, entry: Any) -> str:
        """The article trafilatura finds in the page, with its tables, pictures and links (as CareCast asks)."""
        import trafilatura

        page = entry.content[0].value
        options = {"include_tables": True, "include_images": True, "include_links": True, "favor_recall": True}
        return trafilatura.extract(page, url=entry.link, output_format="html", **options) or ""
