"""The Bluesky channel's configuration: ``channels.<name>`` of type ``bluesky`` and the account's credentials."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, HttpUrl, IPvAnyNetwork, StrictBool, field_validator

from carecast.plugin import ChannelSettings, SecretRef, Strict
from carecast_channels.http import https_or_loopback


class BlueskyCredentials(Strict):
    """The account's handle and an app password (Settings → Privacy and security → App passwords), by reference."""

    handle: str = Field(pattern=r"^[A-Za-z0-9.-]+$", description="the account's handle, e.g. oakviewpt.bsky.social")
    app_password: SecretRef


class BlueskyConfig(ChannelSettings):
    """``channels.<name>`` of type ``bluesky``."""

    pds_url: HttpUrl = Field(HttpUrl("https://bsky.social"), description="the account's PDS (a local test server)")
    hashtags: bool = Field(True, description="append the practice's hashtags when they fit")
    too_long: Literal["teaser", "thread"] = Field(
        "teaser",
        description="an item over 300 graphemes: one post of its title, opening sentences and link, or a thread",
    )
    max_thread_parts: int = Field(4, ge=2, le=10, description="a longer thread becomes a teaser")
    link_card: bool = Field(True, description="show the item's link as a card with its title and image")
    language: str = Field("en", pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", description="the posts' language (BCP-47)")
    credentials: BlueskyCredentials | None = Field(None, description="post with these; absent: write to the outbox")
    timeout: float = Field(30, gt=0, le=300, description="seconds one request (or the image download) may take")
    image_allow_private: StrictBool | list[IPvAnyNetwork] = Field(
        False,
        description="may fetch an item's image from private, loopback and link-local addresses: all (true) or these "
        "networks (a local test server, an intranet CDN); by default such addresses are refused",
    )
    retry_budget: float = Field(10, ge=0, le=300, description="seconds a publish may wait out rate limits")

    @field_validator("pds_url")
    @classmethod
    def _secure(cls, value: HttpUrl) -> HttpUrl:
        # The app password and the session's tokens travel to it: never in clear text, except to a test server.
        return https_or_loopback(value)
