"""The public plugin API: everything a channel plugin may import from CareCast, and nothing else.

A channel (built in under ``channels/`` or a third party's package) imports only ``carecast.plugin`` and its
helper modules (:mod:`carecast.plugin.text`, :mod:`carecast.plugin.audience`, :mod:`carecast.plugin.media`);
``tests/test_imports.py`` holds the built-in channels to it. Names here keep their meaning across CareCast's own
refactorings: the modules behind them may move, these imports do not.

The contract, in short (the README's "Writing a channel" walks through it):

- subclass :class:`Channel`: class data (``name``, ``Config``, UTM tags, ``limits``), ``compose`` (pure: items to a
  :class:`Draft`) and ``publish`` (a draft through a transport, with a :class:`PublishContext`);
- ``PublishContext.ledger`` is a :class:`ChannelLedger`: claim a recipient or part (:func:`part_address`) before
  sending to it, record how it ended (:class:`DeliveryOutcome`), save and load a multi-step send's progress,
  stream the audience; ``context.pace()`` before each provider request, ``context.stop_if_asked(name)`` before
  each next recipient or part;
- fail with the errors below (:class:`PublishError`, transient or not; :class:`CredentialError`; ...), never by
  returning a flag; secrets are :class:`SecretRef` fields resolved at send time and never written anywhere;
- run :mod:`carecast.testing`'s contract kit on the plugin with pytest.
"""

from __future__ import annotations

from carecast.channel import (
    TRANSIENT_STATUSES,
    Channel,
    Engagement,
    PracticeContext,
    PublishContext,
    RateLimit,
    Request,
    Response,
    Route,
    refusal,
    unreachable,
)
from carecast.config import ChannelSettings, Settings
from carecast.errors import (
    AlreadyClaimed,
    CareCastError,
    ChannelError,
    CredentialError,
    ImageError,
    MeasureError,
    PublishError,
    RenderError,
    TokenError,
)
from carecast.inflight import LOST, Lookup, claim_time, made_since, provider_time, send_once
from carecast.ledger import IN_FLIGHT, TO_RESEND, DeliveryOutcome, DeliveryRecord, part_address
from carecast.ledger.contract import ChannelLedger
from carecast.ledger.metrics import as_numbers
from carecast.model import ContentItem, Draft, Receipt, now_utc
from carecast.outbox import Outbox
from carecast.secrets import BlockSecret, EnvSecret, SecretRef, resolve
from carecast.strict import Strict

__all__ = [
    "IN_FLIGHT",
    "LOST",
    "TO_RESEND",
    "TRANSIENT_STATUSES",
    "AlreadyClaimed",
    "BlockSecret",
    "CareCastError",
    "Channel",
    "ChannelError",
    "ChannelLedger",
    "ChannelSettings",
    "ContentItem",
    "CredentialError",
    "DeliveryOutcome",
    "DeliveryRecord",
    "Draft",
    "Engagement",
    "EnvSecret",
    "ImageError",
    "Lookup",
    "MeasureError",
    "Outbox",
    "PracticeContext",
    "PublishContext",
    "PublishError",
    "RateLimit",
    "Receipt",
    "RenderError",
    "Request",
    "Response",
    "Route",
    "SecretRef",
    "Settings",
    "Strict",
    "TokenError",
    "as_numbers",
    "claim_time",
    "made_since",
    "now_utc",
    "part_address",
    "provider_time",
    "refusal",
    "resolve",
    "send_once",
    "unreachable",
]
