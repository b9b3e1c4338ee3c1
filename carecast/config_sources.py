"""The source sections of a practice's configuration (``sources:``): feeds, observances, Markdown, campaigns.

Part of :mod:`carecast.config`, which re-exports them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, HttpUrl, IPvAnyNetwork, StrictBool, ValidationInfo, field_validator

from carecast.fetch import internal_host_reason
from carecast.strict import Strict


def refuse_internal(host: str, info: ValidationInfo, what: str) -> None:
    """Raise ValueError when ``host`` names an internal address the section's ``allow_private`` does not allow."""
    if reason := internal_host_reason(host, info.data.get("allow_private", False)):
        raise ValueError(f"{reason}; set allow_private: true for {what} on the local network")


class RssSource(Strict):
    type: Literal["rss"]
    # Before url: url's check reads it.
    allow_private: StrictBool | list[IPvAnyNetwork] = Field(
        False,
        description="may connect to private, loopback and link-local addresses: all (true) or these networks",
    )
    url: str = Field(description="an http(s) URL, or a file path relative to the config folder")
    timeout: float = Field(10.0, gt=0, le=120, description="seconds the whole fetch may take, redirects included")
    max_items: int = Field(50, ge=1)
    max_bytes: int = Field(10_000_000, ge=1, description="largest body accepted, once decompressed")
    strip: list[str] = Field(
        default_factory=list,
        description="regular expressions (case-insensitive): a block of a post's body whose text matches one is "
        "removed, e.g. the blog's own 'Subscribe to our newsletter' footer",
    )

    @field_validator("url")
    @classmethod
    def _fetchable(cls, url: str, info: ValidationInfo) -> str:
        parts = urlsplit(url)
        if len(parts.scheme) <= 1:  # no scheme, or a Windows drive letter: a file path
            return url
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError(f"an http(s) URL or a file path, not {url!r}")
        refuse_internal(parts.hostname, info, "a feed")
        return url

    @field_validator("strip")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"a regular expression, not {pattern!r} ({exc})") from exc
        return value

    @property
    def strip_patterns(self) -> list[re.Pattern[str]]:
        return [re.compile(pattern, re.IGNORECASE) for pattern in self.strip]


class ObservanceSource(Strict):
    type: Literal["observances"]
    file: Path = Path("observances.yaml")
    lead_days: int = Field(14, ge=0, le=366, description="days before an observance starts that it becomes an item")


class MarkdownSource(Strict):
    type: Literal["markdown"]
    path: Path = Path("content")


class CampaignSource(Strict):
    """A message of the practice's own wording, one item a period: e.g. a reactivation invitation each quarter, so
    a channel addressing an audience segment reaches each of its people at most once a period."""

    type: Literal["campaign"]
    every: Literal["month", "quarter", "year"] = "quarter"
    title: str = Field(min_length=1, description="the email's heading; never a condition or treatment (PHI)")
    text: str = Field(min_length=1, description="the wording; never a condition or treatment (PHI check on)")
    url: HttpUrl | None = Field(None, description="where it invites them, e.g. the booking page")
    audiences: list[str] = Field(default_factory=list, description="who it is for: audience names or kinds")
    campaign: str | None = Field(None, pattern=r"^[a-z0-9_]+$", description="utm_campaign prefix, e.g. reactivation")


SourceConfig = Annotated[RssSource | ObservanceSource | MarkdownSource | CampaignSource, Field(discriminator="type")]
