"""The SMS channel: one short text per item to every subscriber who consented, sent through Twilio.

``compose`` renders ``templates/sms/text.txt.j2`` ("Oakview PT: <summary> <link> Reply STOP to opt out"): the
sender prefix and the opt-out footer are always there and count toward the segments (RULES.md "SMS compliance").
Typographic quotes, dashes and the ellipsis become their GSM-7 look-alikes, since one of them alone makes the text
UCS-2 and halves what a segment holds; a summary still too long is shortened on a word boundary to fit
``max_segments``. Items that mention a patient are refused even with an authorization: no PHI in any SMS.

Without credentials ``publish`` writes to the outbox one Twilio ``Messages.json`` request per subscriber who may
receive it, and lists the others with the reason they are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field, field_validator

from carecast.audience import e164, load_audience
from carecast.config import ChannelSettings
from carecast.errors import ConfigError, MeasureError, PublishError, RenderError
from carecast.model import ContentItem, Draft, Receipt
from carecast.text import shorten, sms_measure, to_gsm
from channels.base import Channel, PublishContext


class SmsConfig(ChannelSettings):
    """``channels.<name>`` of type ``sms``."""

    from_number: str = Field(description="the sending number, E.164 (+13125550100)")
    opt_out_text: str = Field("Reply STOP to opt out", description="the footer of every text; must name STOP")
    max_segments: int | None = Field(None, ge=1, le=10, description="lowers the channel's 3 segments")

    @field_validator("from_number")
    @classmethod
    def _e164(cls, value: str) -> str:
        return e164(value)

    @field_validator("opt_out_text")
    @classmethod
    def _names_stop(cls, value: str) -> str:
        # Carriers and the TCPA expect the standard keyword; a footer without it is no opt-out instruction.
        if "STOP" not in value.split():
            raise ValueError(f"opt-out wording that names STOP, such as 'Reply STOP to opt out', not {value!r}")
        return value


class SmsChannel(Channel):
    """Marketing texts: one item a text, to every subscriber with consent on file."""

    name = "sms"
    Config = SmsConfig
    utm_source = "sms"
    utm_medium = "sms"
    limits: ClassVar[dict[str, int]] = {"max_segments": 3}

    config: SmsConfig

    def admit(self, item: ContentItem) -> None:
        """Refuse any item that mentions a patient, authorized or not.

        Raises RenderError: RULES.md "Healthcare" allows no PHI in an SMS at all.
        """
        super().admit(item)
        if item.mentions_patient:
            raise RenderError(
                self.instance, "mentions a patient: no PHI in any SMS, even with an authorization", [item.id]
            )

    def compose(self, items: Sequence[ContentItem]) -> Draft:
        """Render one item as a text within ``max_segments``, shortening its summary when needed.

        Raises RenderError when ``items`` is not exactly one item, when not even a word of the summary fits beside
        the prefix, link and footer, or when the template leaves out the sender prefix or the opt-out footer.
        """
        if len(items) != 1:
            raise RenderError(self.instance, f"a text is for exactly one item, not {len(items)}", [i.id for i in items])
        item = items[0]
        link = self.link(item)
        limit = self.limit("max_segments") or self.limits["max_segments"]

        def text(body: str) -> str:
            return to_gsm(self.template("text.txt.j2", item=item, body=body, link=link))

        def fits(body: str) -> bool:
            return sms_measure(text(body)).segments <= limit

        try:
            body = shorten(" ".join((item.summary_text or item.title).split()), fits, ellipsis="...")
        except MeasureError as exc:
            raise RenderError(self.instance, f"does not fit in {limit} segments: {exc}", [item.id]) from exc
        message = text(body)
        prefix, footer = to_gsm(f"{self.practice.short_name}:"), to_gsm(self.config.opt_out_text)
        if not message.startswith(prefix) or footer not in message:
            raise RenderError(self.instance, f"the template must start with {prefix!r} and keep {footer!r}", [item.id])
        return Draft(channel=self.instance, item_ids=(item.id,), parts=(message,))

    def publish(self, draft: Draft, context: PublishContext) -> Receipt:
        """Write one Twilio ``Messages.json`` request per subscriber who may receive ``draft``, and the skipped ones.

        Raises PublishError (not transient) when the audience file is invalid or the outbox refuses the file.
        """
        try:
            audience = load_audience(self.settings.path(self.settings.audience), "sms")
        except ConfigError as exc:
            raise PublishError(self.instance, f"the SMS audience cannot be used: {exc}", transient=False) from exc
        payload = {
            "endpoint": "POST /2010-04-01/Accounts/{AccountSid}/Messages.json",
            "account": self.config.account,
            "requests": [
                {"To": subscriber.address, "From": self.config.from_number, "Body": draft.text}
                for subscriber in audience
                if subscriber.can_receive
            ],
            "skipped": [
                {"to": subscriber.address, "reason": subscriber.exclusion_reason}
                for subscriber in audience
                if not subscriber.can_receive
            ],
        }
        path = context.outbox.write_json(self.instance, context.key, payload)
        return context.outbox.receipt(path)
