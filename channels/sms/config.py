"""The SMS channel's configuration: ``channels.<name>`` of type ``sms`` and its Twilio credentials."""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import AnyHttpUrl, Field, field_validator, model_validator

from carecast.plugin import ChannelSettings, SecretRef, Strict
from carecast.plugin.audience import QuietHours, e164
from carecast_channels.http import https_or_loopback

API_VERSION = "2010-04-01"


#: The footer of every text unless the practice words its own: translated per item (carecast/words.py).
DEFAULT_OPT_OUT = "Reply STOP to opt out"


class TwilioCredentials(Strict):
    """``channels.<name>.credentials``: the Twilio account; only the Auth Token is secret, named by reference."""

    account_sid: str = Field(pattern=r"^AC[0-9a-f]{32}$", description="the Account SID (AC...), not a secret")
    auth_token: SecretRef = Field(description="{env: TWILIO_AUTH_TOKEN} or {block: twilio-auth-token}")
    api_base: AnyHttpUrl = Field(AnyHttpUrl("https://api.twilio.com"), description="the API's base URL")

    @field_validator("api_base")
    @classmethod
    def _secure(cls, value: AnyHttpUrl) -> AnyHttpUrl:
        # The Auth Token travels to it: never in clear text or to an internal address, except to a test server.
        return https_or_loopback(value)

    def url(self, path: str) -> str:
        return f"{str(self.api_base).rstrip('/')}/{API_VERSION}/Accounts/{self.account_sid}{path}"


class SmsConfig(ChannelSettings):
    """``channels.<name>`` of type ``sms``."""

    from_number: str | None = Field(None, description="the sending number, E.164 (+13125550100)")
    messaging_service_sid: str | None = Field(
        None, pattern=r"^MG[0-9a-f]{32}$", description="a Twilio Messaging Service (MG...) instead of from_number"
    )
    status_callback: AnyHttpUrl | None = Field(None, description="where Twilio reports each message's delivery")
    opt_out_text: str = Field(
        DEFAULT_OPT_OUT,
        description="the footer of every text; must name STOP (the default is said in the item's language)",
    )
    max_segments: int | None = Field(None, ge=1, le=10, description="lowers the channel's 3 segments")
    quiet_hours: QuietHours = Field(default_factory=QuietHours, description="when recipients may be texted")
    timeout: float = Field(10.0, gt=0, le=120, description="seconds to wait for one answer from Twilio")
    retry_budget: float = Field(
        10.0, ge=0, le=300, description="seconds a publish may wait on 429/5xx before leaving the rest for next run"
    )
    emoji: Literal["drop", "keep"] = Field(
        "drop", description="drop an item's emoji (GSM-7, twice the text per segment), or keep them when they fit"
    )
    credentials: TwilioCredentials | None = Field(None, description="send through Twilio; absent: write to the outbox")
    #: Twilio's REST API takes several requests at once from an account (it answers 429/20429 beyond its concurrency
    #: limit, support.twilio.com "API concurrency"); a handful at once is what one process uses well.
    max_concurrency: ClassVar[int] = 8

    @field_validator("from_number")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        return None if value is None else e164(value)

    @field_validator("opt_out_text")
    @classmethod
    def _names_stop(cls, value: str) -> str:
        # Carriers and the TCPA expect the standard keyword; a footer without it is no opt-out instruction.
        if "STOP" not in value.split():
            raise ValueError(f"opt-out wording that names STOP, such as 'Reply STOP to opt out', not {value!r}")
        return value

    @model_validator(mode="after")
    def _a_sender(self) -> Self:
        if self.from_number is None and self.messaging_service_sid is None:
            raise ValueError("from_number or messaging_service_sid: every text needs a sender")
        return self
