"""Where content comes from: one entry point, :func:`read_source`, over the three kinds of source.

- ``rss``: an RSS/Atom feed over http(s) with a conditional GET, bounded in time, size and address, or a feed
  file (:mod:`carecast.sources.rss`);
- ``observances``: recognition days and weeks from date rules (:mod:`carecast.sources.observances`);
- ``markdown``: hand-written posts with YAML front matter (:mod:`carecast.sources.markdown`);
- ``campaign``: one message of the practice's own wording a period (:mod:`carecast.sources.campaign`).

Each returns a :class:`SourceResult` of :class:`~carecast.model.ContentItem` with stable ids, sanitised HTML and
UTC dates. A source that cannot be read raises :class:`~carecast.errors.SourceError`; a bad observances file raises
:class:`~carecast.errors.ConfigError`. The ledger, not the source, decides what is new.
"""

from __future__ import annotations

from datetime import date
from typing import assert_never

from carecast.config import (
    CampaignSource,
    MarkdownSource,
    ObservanceSource,
    RssSource,
    Settings,
    SourceConfig,
    today_in,
)
from carecast.sources.result import KnownEntries, SourceResult, Validators

__all__ = ["KnownEntries", "SourceResult", "Validators", "read_source"]


def read_source(
    name: str,
    config: SourceConfig,
    settings: Settings,
    *,
    validators: Validators | None = None,
    known: KnownEntries | None = None,
    today: date | None = None,
) -> SourceResult:
    """Read the source ``name`` once.

    ``validators`` are the ones kept from the previous poll of an RSS source; ``known`` tells which of its entries
    the ledger holds as they are (those are passed over, counted in ``unchanged``); ``today`` (the practice's local
    date) defaults to now in the practice's zone.

    Raises SourceError (the source name and the reason) when the source cannot be fetched or read, and ConfigError
    when an observances file is invalid.
    """
    # Imported when first used: each reader pulls in its own libraries (feedparser, markdown).
    from carecast.sources.campaign import read_campaign
    from carecast.sources.markdown import read_markdown
    from carecast.sources.observances import read_observances
    from carecast.sources.rss import read_rss

    if isinstance(config, RssSource):
        return read_rss(name, config, settings, validators=validators, known=known)
    local_today = today or today_in(settings)
    if isinstance(config, ObservanceSource):
        return read_observances(name, config, settings, today=local_today)
    if isinstance(config, MarkdownSource):
        return read_markdown(name, config, settings, today=local_today)
    if isinstance(config, CampaignSource):
        return read_campaign(name, config, settings, today=local_today)
    assert_never(config)
