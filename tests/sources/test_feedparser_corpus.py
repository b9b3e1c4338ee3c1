"""Every file of feedparser's own test corpus goes through the RSS source without surprises.

The corpus (about 2,100 feeds: every encoding, entity, dialect and breakage feedparser knows) lives in the shared
folder beside the repository. Each file is read as a file source; only SourceError may escape, and every item it
yields has an id, a UTC date and sanitised HTML. Each is read a second time as a poll after its items were stored:
it passes over the entries they came from and reads only the others.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from carecast.config import RssSource, Settings, read_yaml
from carecast.errors import SourceError
from carecast.sources import read_source
from tests.conftest import SAMPLE_CONFIG, shared_corpus

CORPUS = shared_corpus("feedparser")
SETTINGS = Settings.model_validate(
    {**read_yaml(SAMPLE_CONFIG / "carecast.yaml"), "channels": {}, "base_dir": SAMPLE_CONFIG}
)


def problems_of(file: Path) -> list[str]:
    """What is wrong with how ``file`` was read, and read again as a second poll; empty when all is well."""
    source = RssSource.model_validate({"type": "rss", "url": str(file)})
    try:
        result = read_source("corpus", source, SETTINGS)
    except SourceError:
        return []
    except Exception as exc:
        return [f"{type(exc).__name__} escaped: {exc}"]
    dates = {item.id: item.published for item in result.items}
    stored = {fingerprint: dates[item_id] for item_id, fingerprint in result.fingerprints.items()}
    try:
        again = read_source(
            "corpus", source, SETTINGS, known=lambda wanted: {f: stored[f] for f in wanted if f in stored}
        )
    except Exception as exc:
        return [f"the second poll: {type(exc).__name__}: {exc}"]
    problems = []
    # A second poll of the same bytes passes over every entry stored from the first; it reads only the others.
    if len(again.items) + again.unchanged != len(result.items) or not {i.id for i in again.items} <= set(dates):
        problems.append(f"the second poll read {len(again.items)} and passed over {again.unchanged}")
    for item in result.items:
        if not item.id.removeprefix("rss:corpus:"):
            problems.append("an item without an id")
        if item.published.utcoffset() != timedelta(0):
            problems.append(f"{item.id}: published {item.published} is not UTC")
        if "<script" in item.summary_html.lower():
            problems.append(f"{item.id}: <script> in the HTML")
    return problems


@pytest.mark.skipif(
    not CORPUS.is_dir(), reason=f"the shared feedparser corpus is not at {CORPUS} (set CARECAST_SHARED)"
)
def test_every_corpus_feed_reads_cleanly_or_raises_source_error() -> None:
    files = sorted(path for path in CORPUS.rglob("*") if path.is_file())
    assert len(files) > 2000
    failures = {str(file.relative_to(CORPUS)): found for file in files if (found := problems_of(file))}
    assert not failures, "\n".join(f"{name}: {'; '.join(found)}" for name, found in sorted(failures.items()))
