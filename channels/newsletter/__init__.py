"""The email newsletter channel: one digest of all new items, as a standards-following email.

``compose`` renders the subject, preheader and both bodies from ``templates/newsletter/`` (RULES.md "Email
newsletter": table layout, CSS inlined with css-inline, hidden preheader first, absolute image URLs with alt text,
postal address and unsubscribe link in both parts). The draft it returns is the same for every recipient: its
unsubscribe links carry a placeholder token that :meth:`NewsletterChannel.build_message` replaces with a
recipient's opaque token, next to the RFC 8058 one-click ``List-Unsubscribe`` headers.

The list is ``audience/newsletter.csv``, or with ``audience:`` an audience of the practice's config (a practice
may have several newsletters, each its own list, templates in ``templates/<channel name>/`` and schedule); an
unsubscribe stops that list, or every list when the recipient asks for all email (:class:`UnsubscribeEndpoint`).

With SMTP ``credentials`` configured, ``publish`` sends one message per consenting subscriber over one
connection (STARTTLS or implicit TLS, then login), each with its own unsubscribe token, a random id the ledger
maps to the address (:mod:`carecast.unsubscribe`). The message is built and encoded once per publication
(:class:`PreparedMessage`); per recipient only ``To``, ``Date``, ``Message-ID`` and the token's characters are
filled into its bytes. Every recipient's delivery is claimed in the ledger before it is sent and recorded after
(in the transaction claiming the next chunk: one commit per chunk of ``delivery_chunk``), so a batch cut short
resumes on the next run with only the recipients not yet sent. A connection lost before the
server had the whole message (at ``MAIL``, ``RCPT`` or mid-data) leaves that recipient to the next run; one lost
after, with the server's reply, leaves them ``unknown``: SMTP keeps no list to ask, so staff settle them
(``carecast resolve ID --recipient ADDR --sent|--resend``) and they are never sent again on their own.
Unsubscribed, bounced and non-consenting subscribers are skipped and counted; a ``5xx`` at ``RCPT`` marks the
address bounced.

Without credentials ``publish`` writes one ``.eml`` per publication to the outbox, addressed to the list and
with a list-level token, exactly as it would go on the wire.

The package: ``config`` (the channel's settings), ``render`` (the draft), ``message`` (the email and
:class:`PreparedMessage`), ``send`` (SMTP and the outbox, with ``smtp_transaction``), ``endpoints`` (unsubscribe).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Self

from carecast.plugin import Draft, PublishContext, Receipt, Route
from carecast_channels.newsletter.config import NewsletterConfig, SmtpCredentials
from carecast_channels.newsletter.endpoints import ALL_EMAIL_FIELD, UNSUBSCRIBE_PATH, UnsubscribeEndpoint
from carecast_channels.newsletter.message import PreparedMessage
from carecast_channels.newsletter.render import (
    COLUMN_WIDTH,
    HTML_TEMPLATE,
    MJML_TEMPLATE,
    TOKEN_PLACEHOLDER,
    subject_title,
)
from carecast_channels.newsletter.send import LIST_TOKEN, SMTP_REPLIES, SUBSCRIBER_PAGE, TOKEN_BLOCK, NewsletterSending

__all__ = [
    "ALL_EMAIL_FIELD",
    "COLUMN_WIDTH",
    "HTML_TEMPLATE",
    "LIST_TOKEN",
    "MJML_TEMPLATE",
    "SMTP_REPLIES",
    "SUBSCRIBER_PAGE",
    "TOKEN_BLOCK",
    "TOKEN_PLACEHOLDER",
    "UNSUBSCRIBE_PATH",
    "NewsletterChannel",
    "NewsletterConfig",
    "PreparedMessage",
    "SmtpCredentials",
    "UnsubscribeEndpoint",
    "subject_title",
]


class NewsletterChannel(NewsletterSending):
    """A digest newsletter: every new item in one email, newest first."""

    name = "newsletter"
    Config = NewsletterConfig
    utm_source = "newsletter"
    utm_medium = "email"
    digest = True
    limits: ClassVar[dict[str, int]] = {"max_subject_length": 78}
    #: Messages per minute one SMTP login may submit (providers throttle beyond such rates); held across workers.
    rate: ClassVar[tuple[int, float] | None] = (60, 60.0)

    config: NewsletterConfig

    @classmethod
    def routes(cls, channels: Sequence[Self]) -> Sequence[Route]:
        """``GET`` and ``POST /unsubscribe`` for the newsletters with an ``unsubscribe_secret`` (see
        :class:`UnsubscribeEndpoint`); none without.

        Raises CredentialError when a secret cannot be read.
        """
        signing = [channel for channel in channels if channel.config.unsubscribe_secret is not None]
        return UnsubscribeEndpoint(signing).routes() if signing else ()

    def publish(self, draft: Draft, context: PublishContext) -> Receipt:
        """Send ``draft`` to every consenting subscriber over SMTP, or without credentials write it to the outbox.

        Raises CredentialError, as it is, when the password or the unsubscribe secret cannot be read (nothing was
        sent). Raises PublishError: transient when some recipients are left for the next run (a 4xx reply, the
        server unreachable or gone mid-batch); permanent when nothing can go out (the login or the sender refused, a
        draft without its footer) or the outbox refuses the file.
        """
        if self.config.credentials is None:
            return self._to_outbox(draft, context)
        return self._by_smtp(draft, context, self.config.credentials)
