"""The newsletter channel's configuration: ``channels.<name>`` of type ``newsletter`` and its SMTP credentials."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal, Self

from pydantic import EmailStr, Field, HttpUrl, field_validator, model_validator

from carecast.plugin import (
    ChannelSettings,
    SecretRef,
    Strict,
)

_DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}


class SmtpCredentials(Strict):
    """``channels.<name>.credentials``: the SMTP submission server and its login; the password by reference."""

    host: str = Field(min_length=1)
    port: int | None = Field(None, ge=1, le=65535, description="default: 587 (starttls), 465 (tls), 25 (none)")
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str = Field(min_length=1)
    password: SecretRef
    ca_file: Path | None = Field(None, description="PEM of the CA of a server whose certificate no public CA signed")
    timeout: float = Field(30, gt=0, le=300, description="seconds to wait for each reply of the server")

    @model_validator(mode="after")
    def _clear_text_only_on_loopback(self) -> Self:
        # Without TLS the password and every recipient's address cross the network in clear text.
        if self.security == "none" and not _is_loopback(self.host):
            raise ValueError(f"security 'none' is allowed only for a server on 127.0.0.1, not {self.host!r}")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or _DEFAULT_PORTS[self.security]

    @property
    def server(self) -> str:
        return f"{self.host}:{self.effective_port}"


class NewsletterConfig(ChannelSettings):
    """``channels.<name>`` of type ``newsletter``: sender, list identity and unsubscribe endpoints."""

    from_name: str = Field(min_length=1, description="the honest sender name shown in the inbox")
    from_address: EmailStr
    reply_to: EmailStr | None = None
    list_name: str = Field(min_length=1, description="shown in the footer and the List-Id header")
    unsubscribe_url: HttpUrl = Field(description="the https one-click endpoint; '?t=<token>' is appended")
    unsubscribe_mailto: EmailStr = Field(description="the address that takes 'unsubscribe' mails")
    max_subject_length: int | None = Field(None, ge=20, le=150, description="lowers the channel's 78")
    credentials: SmtpCredentials | None = Field(None, description="send over SMTP; absent: write to the outbox")
    unsubscribe_secret: SecretRef | None = Field(None, description="verifies unsubscribe links sent with signed tokens")
    body: Literal["excerpt", "full"] = Field(
        "excerpt", description="each item's opening and 'Read more' (excerpt), or the whole post (full)"
    )
    excerpt_words: int = Field(60, ge=20, le=300, description="about how many words an excerpt has")

    @model_validator(mode="after")
    def _secret_with_credentials(self) -> Self:
        if self.credentials is not None and self.unsubscribe_secret is None:
            raise ValueError(
                "unsubscribe_secret is required with credentials: it verifies the signed links sent before"
            )
        return self

    @field_validator("unsubscribe_url")
    @classmethod
    def _https_only(cls, value: HttpUrl) -> HttpUrl:
        # RFC 8058: one-click unsubscribe URIs must be https.
        if value.scheme != "https":
            raise ValueError(f"an https URL (RFC 8058 one-click unsubscribe), not {value.scheme!r}")
        return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
