"""The benchmark scenarios: each one prepares its data once, then times CareCast and a baseline doing the same work.

A baseline is the shortest honest script with the same guarantees and no framework: the default
``feedparser.parse`` and an SQLite insert; one ``smtplib`` connection; one ``requests.Session``; every send claimed
in SQLite before it goes and recorded after it (in chunks of ``CHUNK``, one transaction each).

Both sides run in a fresh worker process (``bench.worker``) against servers the parent started; imports happen
before the clock starts, and each side imports only what it uses, so its peak memory is its own. Sizes: ``full`` is
what issue 10 asks for, ``default`` what ``make bench`` runs on this shared 2-core machine (times ``BENCH_SCALE``),
``quick`` the smoke run of the test suite.
"""

from __future__ import annotations

import copy
import csv
import functools
import hashlib
import json
import os
import shutil
import sqlite3
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parents[1]
#: Sends claimed (and results recorded) per transaction, by the baselines and by CareCast (``ledger.delivery_chunk``,
#: 1 by default): both sides trade the same crash exposure (up to this many left unknown) for speed.
CHUNK = 500
#: Test values of the local servers, never real secrets (the X server's defaults: ``tests.providers.xapi``).
X_KEYS = {
    "consumer_key": "test-consumer-key",
    "consumer_secret": "test-consumer-secret",
    "access_token": "1000000001-test-access-token",
    "access_token_secret": "test-access-token-secret",
}
SMTP_USER, SMTP_PASSWORD = "carecast", "bench-smtp-password"
UNSUBSCRIBE_SECRET = "bench-unsubscribe-secret"
#: Monday 2026-02-02 17:00 UTC: 11:00 in Chicago, inside every recipient's quiet-hours window.
OPEN = datetime(2026, 2, 2, 17, 0, tzinfo=UTC)
SECRETS_ENV = {
    "BENCH_SMTP_PASSWORD": SMTP_PASSWORD,
    "BENCH_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET,
    "BENCH_TWILIO_TOKEN": "0123456789abcdef0123456789abcdef",
    **{f"BENCH_X_{name.upper()}": value for name, value in X_KEYS.items()},
}

#: The shared PostgreSQL server (trust, user postgres): a ``-pg`` scenario makes a database of its own on it and
#: drops it when done.
POSTGRES = os.environ.get("CARECAST_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")

SENTENCES = (
    "Sitting all day stiffens the hips and the lower back.",
    "Five short stretches, ten minutes in all, undo most of it.",
    "Start with a seated hamstring stretch and hold it for thirty seconds.",
    "Then roll your shoulders back slowly ten times, breathing out each time.",
    "A standing hip flexor stretch comes next: one foot forward, the back knee soft.",
    "Finish with a chin tuck to ease the neck after hours at a screen.",
    "Ask your physical therapist which ones suit your own recovery.",
)


@dataclass(frozen=True)
class Servers:
    """Where the parent's local servers listen (127.0.0.1 only)."""

    smtp_port: int
    twilio_url: str
    twilio_sid: str
    feed_url: str
    x_url: str


class Scenario(ABC):
    """One piece of work, timed on both sides. ``size`` is its main count (feeds, items, recipients, rows)."""

    name: ClassVar[str]
    unit: ClassVar[str]
    sizes: ClassVar[dict[str, int]]  # full, default, quick
    baseline_says: ClassVar[str]
    #: The local Twilio server's limit for this scenario (answers 429 beyond it); None: no limit.
    twilio_per_second: ClassVar[float | None] = None
    #: The local X server's limit for this scenario: posts per window of seconds (429 beyond); None: X's own.
    x_posts_per_window: ClassVar[tuple[int, int] | None] = None
    #: What the baseline side imports before its clock starts (``bench.worker.PRELOAD``): CareCast's own modules
    #: when the baseline is CareCast itself at another size.
    baseline_imports: ClassVar[str] = "baseline"
    #: A run that ``prepare`` timed to compare CareCast's with (what it was, seconds), shown in the notes.
    reference: tuple[str, float] | None = None
    #: Sends claimed (and results recorded) per transaction on both sides (CareCast's ``ledger.delivery_chunk``).
    delivery_chunk: ClassVar[int] = CHUNK
    #: Where the ledger lives: a SQLite file in the workdir, or a PostgreSQL database of the scenario's own.
    dialect: ClassVar[str] = "sqlite"
    #: What the CareCast side imports before the clock starts (None: the worker's usual set).
    preload: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, size: int, workdir: Path, servers: Servers) -> None:
        self.size = size
        self.workdir = workdir
        self.servers = servers

    @property
    def ledger_file(self) -> Path:
        return self.workdir / "ledger.db"

    @property
    def template_file(self) -> Path:
        return self.workdir / "ledger.template.db"

    @property
    def database(self) -> str:
        """The PostgreSQL database of a ``postgresql`` scenario, named after its workdir (unique to the run)."""
        return "carecast_bench_" + hashlib.sha256(str(self.workdir).encode()).hexdigest()[:12]

    @property
    def ledger_url(self) -> str:
        if self.dialect == "sqlite":
            return f"sqlite:///{self.ledger_file}"
        return f"{POSTGRES.replace('postgresql://', 'postgresql+psycopg://', 1)}/{self.database}"

    @abstractmethod
    def prepare(self, feeds: dict[str, bytes]) -> None:
        """Once, in the parent: write the config and the data both sides start from (feeds go to the feed server)."""

    def fresh(self) -> None:
        """Before each run, untimed: every run starts from the prepared ledger."""
        if self.dialect == "postgresql":
            if self.template_file.exists():  # the marker save_template left: the database was copied
                admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
                admin(f'CREATE DATABASE "{self.database}" TEMPLATE "{self.database}_t"')
        elif self.template_file.exists():
            remove_database(self.ledger_file)
            shutil.copyfile(self.template_file, self.ledger_file)
            os.sync()  # else the timed run's first commit pays for writing out the copy (seconds at 1M rows)
        remove_database(self.workdir / "baseline.db")
        shutil.rmtree(self.workdir / "outbox", ignore_errors=True)

    @abstractmethod
    def carecast(self) -> dict[str, float]:
        """Do the work through CareCast; return extra measures (e.g. seconds to the first line printed)."""

    @abstractmethod
    def baseline(self) -> dict[str, float]:
        """Do the same work the simplest honest way; return extra measures."""

    # -- helpers both sides use ---------------------------------------------------------------------------------

    def create_ledger(self) -> None:
        """A ``postgresql`` scenario's empty database (the first open migrates it); nothing for SQLite."""
        if self.dialect == "postgresql":
            admin(f'CREATE DATABASE "{self.database}"')

    def cleanup(self) -> None:
        """Once, in the parent, after the last run: drop the scenario's PostgreSQL databases."""
        if self.dialect == "postgresql":
            for name in (self.database, f"{self.database}_t"):
                admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def config_file(self) -> Path:
        return self.workdir / "config" / "carecast.yaml"

    def write_config(self, changes: dict[str, Any]) -> Path:
        from tests.conftest import write_config

        ledger = {"url": self.ledger_url, "delivery_chunk": self.delivery_chunk}
        changes = {"ledger": ledger, "outbox": str(self.workdir / "outbox")} | changes
        shutil.rmtree(self.workdir / "config", ignore_errors=True)
        return write_config(self.workdir, changes)

    def settings_and_ledger(self) -> tuple[Any, Any]:
        from carecast.ledger import Ledger
        from carecast.practice import load_settings

        settings = load_settings(self.config_file())
        return settings, Ledger(settings.ledger_url())

    def publish_one(self, channel: str, now: datetime | None = None) -> dict[str, float]:
        """CareCast publishes what is due on ``channel``: one publication, which must go out."""
        from carecast.pipeline import publish

        settings, ledger = self.settings_and_ledger()
        [outcome] = publish(settings, ledger, channel, now=now)
        assert outcome.state == "published", outcome.detail
        ledger.close()
        return {}

    def save_template(self) -> None:
        if self.dialect == "postgresql":
            admin(f'CREATE DATABASE "{self.database}_t" TEMPLATE "{self.database}"')
            self.template_file.touch()
        else:
            shutil.copyfile(self.ledger_file, self.template_file)


def admin(statement: str) -> None:
    """Run one statement on the PostgreSQL server's ``postgres`` database, outside a transaction (CREATE DATABASE)."""
    import psycopg

    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as connection:
        connection.execute(statement.encode())


# -- content ----------------------------------------------------------------------------------------------------


def long_text(number: int, sentences: int = 14) -> str:
    """A long, varied summary (about 100 words per 7 sentences): X threads it, SMS shortens it."""
    return " ".join(SENTENCES[(number + i) % len(SENTENCES)] for i in range(sentences)) + f" (tip {number})"


def rss_feed(title: str, count: int, first: int = 0, start: datetime = datetime(2026, 1, 1, tzinfo=UTC)) -> bytes:
    """An RSS 2.0 feed of ``count`` items with HTML summaries and relative links, newest first; post ``n`` is
    published ``n`` hours after ``start``."""
    entries = []
    for number in range(first + count - 1, first - 1, -1):
        html = f"<p>{long_text(number, 5)}</p><p><a href='/blog/post-{number}'>Read more</a> <b>today</b>.</p>"
        entries.append(
            f"<item><title>Post {number} of {title}</title><link>https://www.oakviewpt.com/blog/post-{number}</link>"
            f"<guid>https://www.oakviewpt.com/blog/post-{number}</guid>"
            f"<pubDate>{format_datetime(start + timedelta(hours=number))}</pubDate>"
            f"<description><![CDATA[{html}]]></description></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>{title}</title><link>https://www.oakviewpt.com/</link><description>bench</description>"
        + "".join(entries)
        + "</channel></rss>"
    ).encode()


def etag(feed: bytes) -> str:
    """The ETag the bench's feed server gives a feed."""
    return '"' + hashlib.sha256(feed).hexdigest()[:16] + '"'


def write_audience(folder: Path, channel_type: str, count: int) -> None:
    """``count`` consenting subscribers (valid, distinct addresses) for ``channel_type``."""
    consent = "2025-01-14T09:12:00-06:00"
    with (folder / f"{channel_type}.csv").open("w", newline="") as stream:
        writer = csv.writer(stream)
        if channel_type == "sms":
            writer.writerow(["phone", "name", "consent_at", "consent_method", "consent_text", "status", "timezone"])
            for n in range(count):
                phone = f"+1{312 + n // 10000 * 461}555{n % 10000:04d}"  # 312, 773, 1234 ... area codes
                row = [phone, f"Patient {n}", consent, "web form", "Reply STOP to opt out.", "subscribed"]
                writer.writerow([*row, "America/Chicago"])
        else:
            writer.writerow(["email", "name", "consent_at", "consent_method", "consent_text", "status"])
            for n in range(count):
                writer.writerow([f"reader{n}@example.com", f"Reader {n}", consent, "web form", "Yes.", "subscribed"])


def observance(key: str, title: str, text: str) -> Any:
    """A one-sentence observance item (a ``ContentItem``) published the day before ``OPEN``."""
    from carecast.model import ContentItem, content_hash

    return ContentItem(
        id=key,
        source="observances",
        kind="observance",
        title=title,
        url=None,
        summary_html=f"<p>{text}</p>",
        summary_text=text,
        published=OPEN - timedelta(days=1),
        content_hash=content_hash(text),
    )


def remove_database(path: Path) -> None:
    """Remove the SQLite file ``path`` with its write-ahead log: a log left beside a new file would replay into it."""
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def baseline_db(path: Path) -> sqlite3.Connection:
    """The baselines' own SQLite ledger: items, and one row per send (claimed, then sent or failed)."""
    db = sqlite3.connect(path)
    db.execute("pragma journal_mode=wal")  # as the CareCast ledger: one fsync a commit
    db.execute("create table if not exists items (id text primary key, title text, link text, summary text, hash text)")
    db.execute("create table if not exists sends (address text primary key, state text, provider_id text)")
    return db


def chunks(values: list[str], size: int = CHUNK) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def consenting(ledger_file: Path, channel_type: str) -> list[str]:
    """The subscribers a baseline may send to, read from the prepared CareCast ledger with plain SQL."""
    with sqlite3.connect(ledger_file) as db:
        return [
            address
            for (address,) in db.execute(
                "select address from subscribers where channel_type = ? and status = 'subscribed'"
                " and consent_at is not null order by address",
                (channel_type,),
            )
        ]


# -- ingest -----------------------------------------------------------------------------------------------------


class IngestCold(Scenario):
    """Cold ingest: ``size`` feeds of 20 items each, nothing seen before."""

    name = "ingest-cold"
    unit = "feeds x 20 items"
    sizes: ClassVar[dict[str, int]] = {"full": 500, "default": 50, "quick": 2}
    baseline_says = "requests + default feedparser.parse + SQLite insert"
    items_per_feed = 20

    def sources(self) -> dict[str, str]:
        return {f"feed{n}": f"{self.servers.feed_url}/{self.name}/{n}.xml" for n in range(self.size)}

    def prepare(self, feeds: dict[str, bytes]) -> None:
        for number, (name, url) in enumerate(self.sources().items()):
            feeds[url.removeprefix(self.servers.feed_url)] = rss_feed(name, self.items_per_feed, first=number * 100)
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
                with db:
                    db.executemany(
                        "insert or ignore into items values (?, ?, ?, ?, ?)",
                        [
                            (
                                entry.id,
                                entry.title,
                                entry.link,
                                entry.summary,
                                hashlib.sha256(entry.summary.encode()).hexdigest(),
                            )
                            for entry in parsed.entries
                        ],
                    )
        db.close()
        return {}


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


# -- adapt ------------------------------------------------------------------------------------------------------


def long_items(count: int, image: str | None = None, sentences: int = 14) -> list[Any]:
    """``count`` long blog posts of ``sentences`` sentences (``image``: the picture each carries)."""
    from carecast.model import ContentItem, content_hash

    now = datetime.now(UTC)
    items = []
    for n in range(count):
        text = long_text(n, sentences)
        items.append(
            ContentItem(
                id=f"bench:{n}",
                source="blog",
                kind="post",
                title=f"Desk stretches, part {n}",
                url=f"https://www.oakviewpt.com/blog/stretches-{n}",
                summary_html=f"<p>{text}</p>",
                summary_text=text,
                published=now - timedelta(minutes=n),
                content_hash=content_hash(text),
                image_url=image,
                image_alt="A patient stretching at a desk" if image else None,
            )
        )
    return items


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
        *(f"channels.{name}" for name in ("newsletter", "x", "sms", "mastodon", "linkedin", "facebook")),
        *(f"channels.{name}" for name in ("instagram", "gbp", "bluesky")),
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


# -- fan-out ----------------------------------------------------------------------------------------------------


class FanoutSms(Scenario):
    """One text to ``size`` consenting subscribers through the local Twilio server."""

    name = "fanout-sms"
    unit = "recipients"
    sizes: ClassVar[dict[str, int]] = {"full": 20000, "default": 1000, "quick": 5}
    baseline_says = "one requests.Session, claims and results in chunks of 500"

    def sms_config(self) -> dict[str, Any]:
        return {
            "credentials": {
                "account_sid": self.servers.twilio_sid,
                "auth_token": {"env": "BENCH_TWILIO_TOKEN"},
                "api_base": self.servers.twilio_url,
            },
            # The local server takes any rate (a long code's default, 1/s, would make this a pacing scenario).
            "rate": "100000/s",
        }

    def prepare(self, feeds: dict[str, bytes]) -> None:
        from carecast.pipeline import make_channel, sync_audience

        self.write_config({"channels": {"sms": self.sms_config()}})
        write_audience(self.workdir / "config" / "audience", "sms", self.size)
        settings, ledger = self.settings_and_ledger()
        sync_audience(settings, ledger)
        text = "National PT Month: thank you for trusting us with your recovery."
        item = observance("observance:bench", "National Physical Therapy Month", text)
        ledger.upsert_items([item])
        ledger.save_draft(make_channel(settings, "sms").render([item]), settings.channels["sms"].account, "approved")
        ledger.close()
        self.save_template()

    def carecast(self) -> dict[str, float]:
        return self.publish_one("sms", OPEN)

    def baseline(self) -> dict[str, float]:
        import requests

        url = f"{self.servers.twilio_url}/2010-04-01/Accounts/{self.servers.twilio_sid}/Messages.json"
        body = "Oakview PT: National PT Month: thank you for trusting us with your recovery. Reply STOP to opt out"
        db = baseline_db(self.workdir / "baseline.db")
        with requests.Session() as session:
            session.auth = (self.servers.twilio_sid, SECRETS_ENV["BENCH_TWILIO_TOKEN"])
            for chunk in chunks(consenting(self.ledger_file, "sms"), self.delivery_chunk):
                with db:
                    db.executemany("insert into sends values (?, 'claimed', null)", [(a,) for a in chunk])
                results = []
                for address in chunk:
                    answer = session.post(url, data={"To": address, "From": "+13125550100", "Body": body}, timeout=10)
                    results.append(
                        ("sent" if answer.status_code == 201 else "failed", answer.json().get("sid"), address)
                    )
                with db:
                    db.executemany("update sends set state = ?, provider_id = ? where address = ?", results)
        db.close()
        return {}


class FanoutSmsOneByOne(FanoutSms):
    """``fanout-sms`` at the default ``delivery_chunk: 1``: each recipient claimed and recorded on their own, so a
    process killed mid-send leaves only the one in flight unknown (issue 8)."""

    name = "fanout-sms-chunk1"
    baseline_says = "one requests.Session, each send claimed and recorded in its own transaction"
    delivery_chunk = 1


class FanoutSmsConcurrent(FanoutSms):
    """``fanout-sms`` with ``concurrency: 4``: four texts in flight at once over one session, the baseline still one
    at a time."""

    name = "fanout-sms-4"
    baseline_says = "one requests.Session, one at a time, claims and results in chunks of 500"

    def sms_config(self) -> dict[str, Any]:
        return super().sms_config() | {"concurrency": 4}


class FanoutSmsOneByOneConcurrent(FanoutSmsConcurrent):
    """``fanout-sms-4`` at the default ``delivery_chunk: 1``: recipients claimed four at a time (those in flight)."""

    name = "fanout-sms-chunk1-4"
    baseline_says = "one requests.Session, one at a time, each send claimed and recorded in its own transaction"
    delivery_chunk = 1


class ScaleSms(FanoutSms):
    """``fanout-sms`` at 1x, 4x and 16x its size: time and peak memory as the audience grows."""

    name = "scale-sms"
    sizes: ClassVar[dict[str, int]] = {"full": 20000, "default": 250, "quick": 2}


class PacedSms(FanoutSms):
    """``fanout-sms`` against a Twilio server that allows 50 messages/s, the channel configured ``rate: 50/s``."""

    name = "paced-sms"
    sizes: ClassVar[dict[str, int]] = {"full": 2000, "default": 500, "quick": 3}
    baseline_says = "the same loop, sleeping 1/50 s before each send"
    twilio_per_second = 50.0

    def sms_config(self) -> dict[str, Any]:
        return super().sms_config() | {"rate": "50/s"}

    def baseline(self) -> dict[str, float]:
        import time

        import requests

        url = f"{self.servers.twilio_url}/2010-04-01/Accounts/{self.servers.twilio_sid}/Messages.json"
        with requests.Session() as session:
            session.auth = (self.servers.twilio_sid, SECRETS_ENV["BENCH_TWILIO_TOKEN"])
            for address in consenting(self.ledger_file, "sms"):
                time.sleep(1 / 50)
                session.post(url, data={"To": address, "From": "+13125550100", "Body": "Oakview PT: hi"}, timeout=10)
        return {}


class FanoutOutbox(FanoutSms):
    """The same text to ``size`` subscribers without credentials: one outbox file holding every request."""

    name = "fanout-outbox"
    baseline_says = "json.dump of the same requests"

    def sms_config(self) -> dict[str, Any]:
        return {}

    def baseline(self) -> dict[str, float]:
        import json

        body = "Oakview PT: National PT Month: thank you for trusting us with your recovery. Reply STOP to opt out"
        requests = [
            {"To": address, "From": "+13125550100", "Body": body} for address in consenting(self.ledger_file, "sms")
        ]
        (self.workdir / "outbox").mkdir(exist_ok=True)
        (self.workdir / "outbox" / "baseline.json").write_text(json.dumps({"requests": requests}, indent=2))
        return {}


class PacedX(Scenario):
    """``size`` posts on X against a server allowing ``x_posts_per_window``, the channel configured at that rate."""

    name = "paced-x"
    unit = "posts"
    sizes: ClassVar[dict[str, int]] = {"full": 300, "default": 60, "quick": 3}
    baseline_says = "requests + OAuth 1.0a, sleeping until x-rate-limit-reset after a 429 (tweepy's wait_on_rate_limit)"
    x_posts_per_window = (20, 5)

    def texts(self) -> list[str]:
        return [
            f"Tip {n}: stand up and stretch for a minute every hour you sit. #physicaltherapy" for n in range(self.size)
        ]

    def prepare(self, feeds: dict[str, bytes]) -> None:
        from carecast.pipeline import make_channel

        posts, window = self.x_posts_per_window or (0, 0)
        x = {
            "credentials": {name: {"env": f"BENCH_X_{name.upper()}"} for name in X_KEYS},
            "api_base": self.servers.x_url,
            "account": "@oakviewpt",
            "hashtags": False,
            "rate": f"{posts}/{window}s",
        }
        self.write_config({"channels": {"x": x}})
        settings, ledger = self.settings_and_ledger()
        channel = make_channel(settings, "x")
        for number, text in enumerate(self.texts()):
            item = observance(f"observance:bench-{number}", text, text)
            ledger.upsert_items([item])
            ledger.save_draft(channel.render([item]), settings.channels["x"].account, "approved")
        ledger.close()
        self.save_template()

    def carecast(self) -> dict[str, float]:
        from carecast.pipeline import publish

        settings, ledger = self.settings_and_ledger()
        outcomes = publish(settings, ledger, "x", now=OPEN)
        assert [outcome.state for outcome in outcomes] == ["published"] * self.size, outcomes
        ledger.close()
        return {}

    def baseline(self) -> dict[str, float]:
        import time

        import requests
        from requests_oauthlib import OAuth1

        with requests.Session() as session:
            session.auth = OAuth1(
                X_KEYS["consumer_key"], X_KEYS["consumer_secret"], X_KEYS["access_token"], X_KEYS["access_token_secret"]
            )
            for text in self.texts():
                while (
                    answer := session.post(f"{self.servers.x_url}/2/tweets", json={"text": text}, timeout=30)
                ).status_code == 429:
                    time.sleep(max(0.0, int(answer.headers["x-rate-limit-reset"]) - time.time()))
                assert answer.status_code == 201, answer.text
        return {}


class FanoutSmtp(Scenario):
    """The newsletter to ``size`` consenting subscribers through the local SMTP server."""

    name = "fanout-smtp"
    unit = "recipients"
    sizes: ClassVar[dict[str, int]] = {"full": 50000, "default": 2000, "quick": 5}
    baseline_says = (
        "one smtplib connection, the same newsletter built once, tokens stored with the claims, claims and results "
        f"in chunks of {CHUNK}"
    )

    def prepare(self, feeds: dict[str, bytes]) -> None:
        from carecast.pipeline import make_channel, sync_audience
        from carecast_channels.newsletter import TOKEN_PLACEHOLDER

        credentials = {
            "host": "127.0.0.1",
            "port": self.servers.smtp_port,
            "security": "none",
            "username": SMTP_USER,
            "password": {"env": "BENCH_SMTP_PASSWORD"},
        }
        newsletter = {"credentials": credentials, "unsubscribe_secret": {"env": "BENCH_UNSUBSCRIBE_SECRET"}}
        newsletter["rate"] = "100000/s"  # the local server takes any rate (the channel's default is 60/min)
        self.write_config({"channels": {"newsletter": newsletter}})
        write_audience(self.workdir / "config" / "audience", "newsletter", self.size)
        settings, ledger = self.settings_and_ledger()
        sync_audience(settings, ledger)
        items = long_items(3)
        ledger.upsert_items(items)
        draft = make_channel(settings, "newsletter").render(items)
        ledger.save_draft(draft, settings.channels["newsletter"].account, "approved")
        ledger.close()
        self.save_template()
        # The baseline sends the same text and HTML (the same bytes on the wire), its token where CareCast's goes.
        (self.workdir / "newsletter.txt").write_text(draft.text.replace(TOKEN_PLACEHOLDER, "TOKEN"))
        (self.workdir / "newsletter.html").write_text((draft.html or "").replace(TOKEN_PLACEHOLDER, "TOKEN"))

    def carecast(self) -> dict[str, float]:
        return self.publish_one("newsletter")

    def baseline(self) -> dict[str, float]:
        import email.policy
        import secrets
        import smtplib
        from email.message import EmailMessage
        from email.utils import make_msgid

        message = EmailMessage()
        message["From"] = "Oakview Physical Therapy <news@oakviewpt.com>"
        message["To"] = "RECIPIENT"
        message["Subject"] = "Oakview PT news: desk stretches"
        message["List-Unsubscribe"] = "<https://www.oakviewpt.com/unsubscribe?t=TOKEN>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.set_content((self.workdir / "newsletter.txt").read_text(), cte="quoted-printable")
        page = (self.workdir / "newsletter.html").read_text()
        message.add_alternative(page, subtype="html", cte="quoted-printable")
        raw = message.as_bytes(policy=email.policy.SMTP)
        db = baseline_db(self.workdir / "baseline.db")
        db.execute("create table tokens (token text primary key, address text)")
        with smtplib.SMTP("127.0.0.1", self.servers.smtp_port, timeout=30) as smtp:
            smtp.login(SMTP_USER, SMTP_PASSWORD)
            for chunk in chunks(consenting(self.ledger_file, "newsletter"), self.delivery_chunk):
                # Every link sent must work: the tokens are stored before any of the chunk goes out.
                tokens = {address: secrets.token_urlsafe(24) for address in chunk}
                with db:
                    db.executemany("insert into sends values (?, 'claimed', null)", [(a,) for a in chunk])
                    db.executemany("insert into tokens values (?, ?)", [(t, a) for a, t in tokens.items()])
                results = []
                for address in chunk:
                    message_id = make_msgid(domain="oakviewpt.com")
                    personal = raw.replace(b"RECIPIENT", address.encode()).replace(b"TOKEN", tokens[address].encode())
                    smtp.sendmail(
                        "news@oakviewpt.com", [address], b"Message-ID: " + message_id.encode() + b"\r\n" + personal
                    )
                    results.append(("sent", message_id, address))
                with db:
                    db.executemany("update sends set state = ?, provider_id = ? where address = ?", results)
        db.close()
        return {}


class FanoutSmtpOneByOne(FanoutSmtp):
    """``fanout-smtp`` at the default ``delivery_chunk: 1``: each recipient claimed (and given a token) and recorded
    on their own, so a process killed mid-send leaves only the one in flight unknown (issue 8)."""

    name = "fanout-smtp-chunk1"
    baseline_says = "one smtplib connection, the same newsletter built once, each send claimed and recorded alone"
    delivery_chunk = 1


class ScaleNewsletter(FanoutSmtp):
    """``fanout-smtp`` at 1x, 4x and 16x its size: time and peak memory as the audience grows."""

    name = "scale-newsletter"
    sizes: ClassVar[dict[str, int]] = {"full": 50000, "default": 500, "quick": 2}


class AudienceUnchanged(Scenario):
    """A run's audience step when the subscriber file (``size`` rows) has not changed since the last run."""

    name = "audience-unchanged"
    unit = "subscribers in the CSV"
    sizes: ClassVar[dict[str, int]] = {"full": 50000, "default": 20000, "quick": 5}
    baseline_says = "SHA-256 of the file, compared with the one kept"

    def prepare(self, feeds: dict[str, bytes]) -> None:
        from carecast.pipeline import sync_audience

        self.write_config({})
        write_audience(self.workdir / "config" / "audience", "newsletter", self.size)
        settings, ledger = self.settings_and_ledger()
        sync_audience(settings, ledger)
        ledger.close()
        self.save_template()

    def carecast(self) -> dict[str, float]:
        from carecast.pipeline import sync_audience

        settings, ledger = self.settings_and_ledger()
        sync_audience(settings, ledger)
        ledger.close()
        return {}

    def baseline(self) -> dict[str, float]:
        for name in ("newsletter.csv", "sms.csv"):
            hashlib.sha256((self.workdir / "config" / "audience" / name).read_bytes()).hexdigest()
        return {}


# -- ledger -----------------------------------------------------------------------------------------------------


#: The columns of the rows ``fill_publications`` writes, table by table.
FILLED = {
    "items": ("id", "source", "published", "content_hash", "first_seen", "data"),
    "drafts": ("id", "channel", "account", "draft_key", "state", "body", "created_at", "updated_at", "publication_id"),
    "publications": (
        "id", "draft_id", "channel", "account", "state", "claimed_at", "finished_at", "location", "transient",
    ),
    "publication_items": ("publication_id", "item_id", "channel", "account"),
}  # fmt: skip


def publication_rows(numbers: range, account: str) -> dict[str, list[tuple[Any, ...]]]:
    """Rows for ``numbers``: an item, its approved X draft, and that draft's publication, sent long ago."""
    when = datetime(2025, 1, 1, tzinfo=UTC)
    return {
        "items": [(f"bench:{n}", "blog", when, "h", when, "{}") for n in numbers],
        "drafts": [(n + 1, "x", account, f"k{n}", "approved", "{}", when, when, n + 1) for n in numbers],
        "publications": [
            (n + 1, n + 1, "x", account, "sent", when, when, f"https://x.com/oakviewpt/status/{n}", False)
            for n in numbers
        ],
        "publication_items": [(n + 1, f"bench:{n}", "x", account) for n in numbers],
    }


def fill_publications(scenario: Scenario, count: int, account: str = "@OakviewPT", step: int = 50_000) -> None:
    """Write ``count`` sent publications straight into the scenario's migrated ledger, fast and untimed: executemany
    on SQLite, COPY on PostgreSQL (then the id sequences moved past them and the tables analysed, as a ledger in
    use would be)."""
    if scenario.dialect == "sqlite":
        # Closed before anything copies the file: the write-ahead log is folded back into it.
        with closing(sqlite3.connect(scenario.ledger_file)) as db, db:
            for start in range(0, count, step):
                for table, rows in publication_rows(range(start, min(count, start + step)), account).items():
                    columns = FILLED[table]
                    marks = ", ".join("?" * len(columns))
                    db.executemany(f"insert into {table} ({', '.join(columns)}) values ({marks})", rows)
        return
    import psycopg

    with psycopg.connect(f"{POSTGRES}/{scenario.database}") as db:
        for start in range(0, count, step):
            for table, rows in publication_rows(range(start, min(count, start + step)), account).items():
                with db.cursor().copy(f"COPY {table} ({', '.join(FILLED[table])}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        for table in ("drafts", "publications"):
            db.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {max(count, 1)})".encode())
    with psycopg.connect(f"{POSTGRES}/{scenario.database}", autocommit=True) as db:
        db.execute(b"ANALYZE")


class Status(Scenario):
    """``carecast status`` with ``size`` publications in the ledger (SQLite), in a process that imports only the
    CLI (before the clock, as every scenario's imports): the peak memory is the command's own."""

    name = "status"
    unit = "publications"
    sizes: ClassVar[dict[str, int]] = {"full": 1_000_000, "default": 100_000, "quick": 20}
    baseline_says = "one SQL query, rows printed as they come"
    preload = ("carecast.cli",)

    def prepare(self, feeds: dict[str, bytes]) -> None:
        self.create_ledger()
        self.write_config({})
        self.settings_and_ledger()[1].close()
        fill_publications(self, self.size)

    def carecast(self) -> dict[str, float]:
        from carecast.cli import main

        main(["status", "--config", str(self.config_file())])
        return {}

    def baseline(self) -> dict[str, float]:
        import sys

        with sqlite3.connect(self.ledger_file) as db:
            for row in db.execute(STATUS_QUERY):
                sys.stdout.write(" | ".join(map(str, row)) + "\n")
        return {}


STATUS_QUERY = (
    "select p.id, p.channel, p.state, coalesce(p.finished_at, p.claimed_at), i.item_id, p.location"
    " from publications p join publication_items i on i.publication_id = p.id order by p.id"
)


class StatusPg(Status):
    """``status`` with the ledger on PostgreSQL (a database of the bench's own on the shared server)."""

    name = "status-pg"
    dialect = "postgresql"
    baseline_says = "one SQL query (server-side cursor), rows printed as they come"

    def baseline(self) -> dict[str, float]:
        import sys

        import psycopg

        with psycopg.connect(f"{POSTGRES}/{self.database}") as db, db.cursor(name="status") as rows:
            rows.itersize = 1000
            for row in rows.execute(STATUS_QUERY.encode()):
                sys.stdout.write(" | ".join(map(str, row)) + "\n")
        return {}


class PublishOne(Scenario):
    """Publish one new X post (to the outbox) with ``size`` publications of X already in the ledger: the cost must
    not grow with the ledger (``SCALED`` runs it at 1x and 10x)."""

    name = "publish-one"
    unit = "publications in the ledger"
    sizes: ClassVar[dict[str, int]] = {"full": 1_000_000, "default": 100_000, "quick": 20}
    baseline_says = "find the due draft, claim it, write the outbox file, record it sent (SQL)"

    def prepare(self, feeds: dict[str, bytes]) -> None:
        from carecast.pipeline import make_channel

        self.create_ledger()
        self.write_config({"channels": {"x": {"schedule": [], "late": "skip"}}})
        settings, ledger = self.settings_and_ledger()
        ledger.close()
        fill_publications(self, self.size)
        tip = "Stand up and stretch once an hour."
        item = replace(long_items(1)[0], id="bench:new", summary_text=tip, summary_html=f"<p>{tip}</p>")
        settings, ledger = self.settings_and_ledger()
        ledger.upsert_items([item])
        ledger.save_draft(make_channel(settings, "x").render([item]), settings.channels["x"].account, "approved")
        ledger.close()
        self.save_template()

    def carecast(self) -> dict[str, float]:
        return self.publish_one("x")

    def baseline(self) -> dict[str, float]:
        with self.connect() as db:
            [(draft_id, body)] = self.fetch(
                db,
                "select d.id, d.body from drafts d where d.channel = 'x' and d.state = 'approved'"
                " and not exists (select 1 from publications p where p.draft_id = d.id)",
            )
            self.fetch(
                db,
                "insert into publications (draft_id, channel, account, state, claimed_at, transient)"
                f" values ({draft_id}, 'x', '@OakviewPT', 'claimed', current_timestamp, false) returning id",
            )
            db.commit()
            (self.workdir / "outbox").mkdir(exist_ok=True)
            (self.workdir / "outbox" / "baseline.json").write_text(str(body))
            self.fetch(db, f"update publications set state = 'sent' where draft_id = {draft_id} returning id")
            db.commit()
        return {}

    def connect(self) -> Any:
        if self.dialect == "sqlite":
            return sqlite3.connect(self.ledger_file)
        import psycopg

        return psycopg.connect(f"{POSTGRES}/{self.database}")

    @staticmethod
    def fetch(db: Any, query: str) -> list[Any]:
        return list(db.execute(query.encode() if not isinstance(db, sqlite3.Connection) else query).fetchall())


class PublishOnePg(PublishOne):
    """``publish-one`` with the ledger on PostgreSQL."""

    name = "publish-one-pg"
    dialect = "postgresql"


# -- orchestration ----------------------------------------------------------------------------------------------


def core_run(config: str, channel: str | None = None) -> None:
    """The pipeline of ``carecast run`` through the core alone, no Prefect: what the flow orchestrates, in order;
    with ``channel``, what a publish run of that channel does (adapt, expire, publish) and nothing else."""
    from carecast import pipeline
    from carecast.practice import open_practice

    with open_practice(config) as practice:
        settings, ledger = practice.settings, practice.ledger
        if channel is None:
            pipeline.sync_audience(settings, ledger)
            for source in settings.sources:
                pipeline.ingest(settings, ledger, source)
        for name in pipeline.channel_names(settings, None if channel is None else [channel]):
            pipeline.adapt(settings, ledger, name)
            pipeline.expire_late_drafts(settings, ledger, name)
            pipeline.publish(settings, ledger, name)


def timed_command(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> dict[str, float]:
    """Run ``command`` to its end (it must succeed), its output appended to ``log``; the peak memory of it and its
    children, waited for."""
    import resource
    import subprocess

    with log.open("ab") as output:
        subprocess.run(command, env=env, cwd=cwd, check=True, stdout=output, stderr=output)
    return {"peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


class RunNothingNew(Scenario):
    """``carecast run`` with nothing new, the whole command (imports, a temporary Prefect API of its own, ~12 task
    runs, stop): the sample practice (3 sources, 3 channels, to the outbox) right after a first run."""

    name = "run-nothing-new"
    unit = "run"
    sizes: ClassVar[dict[str, int]] = {"full": 1, "default": 1, "quick": 1}
    baseline_says = "the core pipeline alone, no Prefect (python -c, imports included)"
    preload = ()
    #: The channel the baseline works on; None: every channel and source, as ``carecast run``.
    channel: ClassVar[str | None] = None

    def prepare(self, feeds: dict[str, bytes]) -> None:
        self.write_config({})
        shutil.copy(ROOT / "prefect.toml", self.workdir)  # a project's: Prefect's home in it, no telemetry
        self.start_server()
        self.carecast()  # the first run (and Prefect's home made): what the timed ones find already done
        self.save_template()

    def start_server(self) -> None:
        """Nothing: the run starts its own API."""

    def environment(self) -> dict[str, str]:
        """The command's environment: no Prefect API configured (the run starts its own), and Python's compiled
        modules kept (as an installation has them: the untimed first run writes them), or every run would compile
        CareCast's own source again."""
        return {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("PREFECT_") and key != "PYTHONDONTWRITEBYTECODE"
        }

    def carecast(self) -> dict[str, float]:
        carecast = [str(Path(sys.executable).with_name("carecast")), "run", "--config", str(self.config_file())]
        return timed_command(carecast, self.environment(), self.workdir, self.workdir / "carecast.log")

    def baseline(self) -> dict[str, float]:
        script = f"from bench.scenarios import core_run; core_run({str(self.config_file())!r}, {self.channel!r})"
        return timed_command([sys.executable, "-c", script], self.environment(), ROOT, self.workdir / "baseline.log")


class RunNothingNewServed(RunNothingNew):
    """The same, against a Prefect server already running (``prefect server start``, once, before the runs)."""

    name = "run-nothing-new-served"
    baseline_says = "the core pipeline alone, no Prefect (python -c, imports included)"

    def start_server(self) -> None:
        from tests.prefect_server import start_prefect

        home = self.workdir / "server"
        home.mkdir()
        server = self._server.enter_context(start_prefect(home, PREFECT_SERVER_UI_ENABLED="false"))
        (self.workdir / "api.url").write_text(server.env["PREFECT_API_URL"])

    def environment(self) -> dict[str, str]:
        return super().environment() | {"PREFECT_API_URL": (self.workdir / "api.url").read_text()}

    def cleanup(self) -> None:
        self._server.close()

    @functools.cached_property
    def _server(self) -> ExitStack:
        return ExitStack()


class PublishServed(RunNothingNewServed):
    """A served publish run with nothing due: ``carecast serve`` running the practice's deployments against the
    server, the ``publish`` deployment of X started through the API and waited for until it completes (the runner
    polls each second and starts the run in a process of its own)."""

    name = "publish-served"
    baseline_says = "the core adapt, expire and publish of X alone, no Prefect (python -c, imports included)"
    channel = "x"

    def start_server(self) -> None:
        from carecast.practice import load_settings
        from tests.prefect_server import PrefectServer, start_carecast_serve, start_prefect

        core_run(str(self.config_file()))  # what a first run leaves: items, drafts, publications
        home = self.workdir / "server"
        home.mkdir()
        server = self._server.enter_context(start_prefect(home, PREFECT_SERVER_UI_ENABLED="false"))
        # The flow runs' processes keep compiled modules, as an installation's (see RunNothingNew.environment).
        kept = {key: value for key, value in server.env.items() if key != "PYTHONDONTWRITEBYTECODE"}
        self._server.enter_context(start_carecast_serve(self.config_file(), PrefectServer(kept, server.process)))
        deployment = server.api.deployment("publish", f"{load_settings(self.config_file()).slug}-x")
        (self.workdir / "api.url").write_text(server.env["PREFECT_API_URL"])
        (self.workdir / "deployment").write_text(str(deployment["id"]))

    def carecast(self) -> dict[str, float]:
        import requests

        api = (self.workdir / "api.url").read_text()
        deployment = (self.workdir / "deployment").read_text()
        for _ in range(20):  # Prefect's SQLite answers 503 (database locked) while the runner polls it: try again
            answer = requests.post(f"{api}/deployments/{deployment}/create_flow_run", json={}, timeout=10)
            if answer.status_code != 503:
                break
            time.sleep(0.25)
        assert answer.status_code == 201, f"create_flow_run answered {answer.status_code}: {answer.text[:300]}"
        run = answer.json()
        while True:
            state = requests.get(f"{api}/flow_runs/{run['id']}", timeout=10).json()["state"]
            if state["type"] == "COMPLETED":
                return {}
            assert state["type"] not in ("FAILED", "CRASHED", "CANCELLED"), state
            time.sleep(0.05)


class PhiStartup(Scenario):
    """The PHI check's start-up (its import, name data and word lists, and a first check: the "first line") and
    then ``size`` checks of a 1,000-word item, in a process that imported nothing of CareCast before the clock."""

    name = "phi-startup"
    unit = "1,000-word items"
    sizes: ClassVar[dict[str, int]] = {"full": 1000, "default": 100, "quick": 5}
    baseline_says = "re: one alternation of 40 condition words and one of capitalised pairs, no name data"
    preload = ()
    baseline_imports = "phi"

    def prepare(self, feeds: dict[str, bytes]) -> None:
        self.write_config({})

    def text(self) -> str:
        """A 1,000-word blog post of the practice naming staff, a partner and a patient in passing."""
        return " ".join([*SENTENCES, "Our patient Kevin Doyle said his knee feels great."] * 12)

    def carecast(self) -> dict[str, float]:
        from carecast.phi import PhiCheck
        from carecast.practice import load_settings

        check = PhiCheck.for_practice(load_settings(self.config_file()), ["Linda Moreau"])
        text = self.text()
        print(len(check.check(text)))  # the first line: start-up done
        for _ in range(self.size):
            check.check(text)
        return {}

    def baseline(self) -> dict[str, float]:
        import re

        conditions = re.compile(r"\b(?:" + "|".join(BASELINE_CONDITIONS) + r")\b", re.IGNORECASE)
        names = re.compile(r"\b[A-Z][a-z]+ [A-Z][a-z]+\b")
        text = self.text()
        print(bool(conditions.search(text) and names.search(text)))
        for _ in range(self.size):
            [(m.start(), n.start()) for m in conditions.finditer(text) for n in names.finditer(text)]
        return {}


BASELINE_CONDITIONS = [
    "ACL",
    "meniscus",
    "rotator",
    "cuff",
    "tendinitis",
    "bursitis",
    "fasciitis",
    "sciatica",
    "herniated",
    "stenosis",
    "scoliosis",
    "arthritis",
    "osteoporosis",
    "fracture",
    "broken",
    "sprain",
    "strain",
    "tear",
    "torn",
    "concussion",
    "migraine",
    "whiplash",
    "stroke",
    "surgery",
    "operation",
    "replacement",
    "reconstruction",
    "rehab",
    "recovery",
    "injury",
    "injured",
    "crutches",
    "walker",
    "cane",
    "wheelchair",
    "brace",
    "sling",
    "pain",
    "therapy",
    "diagnosed",
]


#: A phone's browser, as the redirect's clients introduce themselves (counted as people).
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1"
#: The baseline: a bare uvicorn ASGI app answering every request with a 302, recording nothing.
BARE_REDIRECT = """
import sys, uvicorn
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    headers = [(b"location", b"https://www.oakviewpt.com/blog/desk?utm_source=sms"), (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": 302, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), lifespan="off", access_log=False, log_level="warning")
"""


class Redirect(Scenario):
    """Short links under load: ``clients`` concurrent keep-alive clients follow the practice's short links through
    ``carecast webhooks`` (each click looked up and counted in the SQLite ledger), against a bare uvicorn app that
    answers 302 without looking anything up or recording anything. Both servers run in processes of their own,
    started once; the timed side only sends the requests. Notes: requests per second and p99 latency."""

    name = "redirect"
    unit = "requests"
    sizes: ClassVar[dict[str, int]] = {"full": 40_000, "default": 10_000, "quick": 400}
    baseline_says = "a bare uvicorn app: 302 to a fixed URL, nothing looked up or recorded"
    preload = ("asyncio",)
    clients: ClassVar[int] = 200

    def prepare(self, feeds: dict[str, bytes]) -> None:
        import socket
        import subprocess

        self.write_config({"links": {"domain": "go.oakviewpt.com"}})
        _, ledger = self.settings_and_ledger()
        try:
            items = [observance(f"bench-{n}", f"Bench {n}", "A link to follow.") for n in range(10)]
            ledger.upsert_items(items)
            target = "https://www.oakviewpt.com/blog/desk?utm_source=sms&utm_medium=sms&utm_campaign=bench"
            codes = [ledger.short_code(item.id, "sms", f"{target}&n={n}") for n, item in enumerate(items)]
        finally:
            ledger.close()
        (self.workdir / "codes").write_text("\n".join(codes))
        ports = []
        for _ in range(2):
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                ports.append(probe.getsockname()[1])
        carecast, bare = ports
        (self.workdir / "ports").write_text(f"{carecast} {bare}")
        commands = [
            [
                sys.executable,
                "-m",
                "carecast.cli",
                "webhooks",
                "--config",
                str(self.config_file()),
                "--port",
                str(carecast),
            ],
            [sys.executable, "-c", BARE_REDIRECT, str(bare)],
        ]
        for command in commands:
            process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self._servers.callback(process.wait, 10)
            self._servers.callback(process.terminate)
        for port in ports:
            wait_for_port(port)

    def carecast(self) -> dict[str, float]:
        return self.load(int((self.workdir / "ports").read_text().split()[0]))

    def baseline(self) -> dict[str, float]:
        return self.load(int((self.workdir / "ports").read_text().split()[1]))

    def load(self, port: int) -> dict[str, float]:
        """``size`` requests from ``clients`` keep-alive connections; the p99 latency in milliseconds."""
        import asyncio

        codes = (self.workdir / "codes").read_text().split()
        per_client = max(1, self.size // self.clients)
        latencies: list[float] = []

        async def client(number: int) -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                for request in range(per_client):
                    code = codes[(number + request) % len(codes)]
                    started = time.perf_counter()
                    writer.write(
                        f"GET /{code} HTTP/1.1\r\nHost: go.oakviewpt.com\r\nUser-Agent: {PHONE}\r\n\r\n".encode()
                    )
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = next(
                        (
                            int(line.split(b":", 1)[1])
                            for line in head.split(b"\r\n")
                            if line.lower().startswith(b"content-length:")
                        ),
                        0,
                    )
                    await reader.readexactly(length)
                    latencies.append(time.perf_counter() - started)
                    if not head.startswith(b"HTTP/1.1 302"):
                        status = head.split(b"\r\n", 1)[0]
                        raise RuntimeError(f"the redirect answered {status!r}")
            finally:
                writer.close()

        async def everyone() -> None:
            await asyncio.gather(*(client(number) for number in range(self.clients)))

        asyncio.run(everyone())
        latencies.sort()
        return {"p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000, "requests": float(len(latencies))}

    def cleanup(self) -> None:
        self._servers.close()

    @functools.cached_property
    def _servers(self) -> ExitStack:
        return ExitStack()


def wait_for_port(port: int, within: float = 30.0) -> None:
    """Until something accepts connections on 127.0.0.1:``port``; raises TimeoutError after ``within`` seconds."""
    import socket

    deadline = time.monotonic() + within
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {within:.0f} s") from None
            time.sleep(0.05)


SCENARIOS: dict[str, type[Scenario]] = {
    scenario.name: scenario
    for scenario in (
        IngestCold,
        IngestNotModified,
        IngestOneNew,
        IngestGrowing,
        AdaptX,
        AdaptXTwiceAsLong,
        AdaptRefusedRerun,
        AdaptEveryChannel,
        FanoutSms,
        FanoutSmsOneByOne,
        FanoutSmsConcurrent,
        FanoutSmsOneByOneConcurrent,
        ScaleSms,
        PacedSms,
        PacedX,
        FanoutOutbox,
        FanoutSmtp,
        FanoutSmtpOneByOne,
        ScaleNewsletter,
        AudienceUnchanged,
        Status,
        StatusPg,
        PublishOne,
        PublishOnePg,
        RunNothingNew,
        RunNothingNewServed,
        PublishServed,
        PhiStartup,
        Redirect,
    )
}
