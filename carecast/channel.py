"""The channel contract: the ``Channel`` base every channel plugin subclasses, the outbox every channel can publish
to, the inbound routes a channel may declare, and the registry that finds plugins by entry point.

A channel declares what it is as class data (``name``, ``Config``, UTM tags, limits) and does two things:
``compose`` turns items into a :class:`~carecast.model.Draft` (pure, deterministic), and ``publish`` sends a
draft through a transport. The base enforces the declared limits on every draft, so no channel can forget one:
a draft over a limit raises :class:`~carecast.errors.RenderError` at render time, never at publish time.

A channel that hears back from its provider or its recipients (delivery receipts, STOP texts, unsubscribe links)
declares :class:`Route` objects in ``routes``; ``carecast webhooks`` serves whatever the installed channels declare.

Plugins are found through the ``carecast.channels`` entry-point group (built-ins the same way). A channel's
entry-point name is its ``name`` and the ``type`` a config section uses to pick it. Only the channels a config
uses are imported, so one broken third-party plugin cannot break the others. This module is the core's side of
the contract: it never imports a plugin by name.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, ClassVar, Self

import jinja2

from carecast.config import ChannelSettings, Settings, slugify
from carecast.errors import ChannelError, ConfigError, PublishError, RenderError
from carecast.failures import CREDENTIAL_TO_FIX as CREDENTIAL_TO_FIX
from carecast.failures import TRANSIENT_STATUSES as TRANSIENT_STATUSES
from carecast.failures import refusal as refusal
from carecast.failures import unreachable as unreachable
from carecast.ledger import Ledger
from carecast.ledger.contract import ChannelLedger
from carecast.model import ContentItem, Draft, Receipt, now_utc
from carecast.outbox import Outbox
from carecast.pacing import Pacer, parse_rate
from carecast.routes import Request as Request
from carecast.routes import Response as Response
from carecast.text import add_utm, sms_measure, x_measure

#: How a publication cut short by a shutdown says so.
STOPPED = "stopped by a shutdown"


def unpaced() -> None:
    """The pace of a run without shared limits (``carecast run``, tests): no wait."""


@dataclass(frozen=True)
class RateLimit:
    """A provider's limit on one sender, shared by every worker: at most ``requests`` per ``seconds``.

    ``name`` is derived from the sender's identity (a number, an account, a login), never from a secret, so two
    practices sending as the same sender share one limit.
    """

    name: str
    requests: int
    seconds: float


@dataclass(frozen=True)
class PublishContext:
    """What a channel gets to publish one claimed publication.

    ``key`` names the publication (the outbox file, the provider's idempotency key); ``ledger`` records a
    multi-step send's progress and each recipient's delivery, so a retry resumes instead of repeating. ``pace``
    is called before each request to the provider: it waits for the sender's :class:`RateLimit` (the flows pass
    one backed by the orchestrator's limits) and raises when it cannot be honoured.
    """

    publication_id: int
    outbox: Outbox
    #: Only what a channel may ask of the ledger (:class:`~carecast.ledger.contract.ChannelLedger`).
    ledger: ChannelLedger
    now: datetime = field(default_factory=now_utc)
    #: Waits for a slot of the channel's rate limit before each provider request (``Channel.paced``: the sender's
    #: token bucket, then the orchestrator's limit); a channel calls it before every request to its provider.
    pace: Callable[[], None] = unpaced
    #: Set when the process is asked to stop (``carecast serve`` shutting down): see ``stop_if_asked``.
    stopping: threading.Event = field(default_factory=threading.Event)
    #: Recipients a fan-out claims (and records) per ledger transaction (``ledger.delivery_chunk``): a crash
    #: mid-chunk leaves up to this many ``unknown``; 1 leaves only the one in flight.
    delivery_chunk: int = 1

    @property
    def key(self) -> str:
        return f"{self.publication_id:06d}"

    def stop_if_asked(self, channel: str) -> None:
        """Call before each next recipient or part: once the process is asked to stop, the one in hand has been
        sent and recorded, and this raises PublishError (transient) leaving the rest for the next run."""
        if self.stopping.is_set():
            # Said in the run's final state and alert: "0 posts" must not hide the texts that did go out.
            accepted, _ = self.ledger.delivery_tally(self.publication_id)
            done = f" after {len(accepted)} sent" if accepted else " before sending any"
            raise PublishError(channel, f"{STOPPED}{done}; the rest is left for the next run", transient=True)


@dataclass(frozen=True)
class PracticeContext:
    """The open practice a route's handler (and a flow task) works in: its settings, its ledger, its channels."""

    settings: Settings
    ledger: Ledger
    channels: Mapping[str, Channel]


@dataclass(frozen=True)
class Engagement:
    """A provider's numbers for one post (or one location): ``numbers`` such as ``{"likes": 3, "reposts": 1}``, and
    ``problems``, what it could not give and why (``{"impressions": "permission missing: read_insights"}``)."""

    numbers: Mapping[str, int]
    problems: Mapping[str, str] = field(default_factory=dict)


#: A route's handler: answers one request for the open practice. It raises CredentialError or LedgerError when
#: a secret or the database fails (answered 500); anything it refuses is an answer (403, 400, ...), not a raise.
Handler = Callable[[Request, PracticeContext], Response]


@dataclass(frozen=True)
class Route:
    """One inbound endpoint a channel contributes: ``method`` and ``path`` (no query) served by ``handler``.

    ``announced`` pairs each config key that tells the outside world this endpoint's URL (a status callback, an
    unsubscribe link) with its value, so ``carecast webhooks --public-url`` can warn when they point elsewhere.
    """

    method: str
    path: str
    handler: Handler
    announced: tuple[tuple[str, str], ...] = ()


class Channel(ABC):
    """Base of every channel plugin.

    Subclasses set the class data and implement ``compose`` and ``publish``. ``limits`` below are enforced by
    ``render``; a subclass's ``Config`` may lower a limit with a key of the same name, never raise it.
    """

    name: ClassVar[str]
    Config: ClassVar[type[ChannelSettings]] = ChannelSettings
    #: UTM tags added to the practice's own links (RULES.md "Links").
    utm_source: ClassVar[str]
    utm_medium: ClassVar[str]
    #: One draft for all new items (a newsletter digest) instead of one per item.
    digest: ClassVar[bool] = False
    #: The kinds of item the channel takes at all (others are never drafted for it); None: every kind.
    kinds: ClassVar[frozenset[str] | None] = None
    #: Limits this channel always obeys (see ``known_limits``); ``enforce`` checks every draft against them.
    limits: ClassVar[dict[str, int]] = {}
    #: What ``limits`` can hold: max_weighted_length (X), max_segments (SMS), max_characters, max_subject_length.
    known_limits: ClassVar[frozenset[str]] = frozenset(
        {"max_weighted_length", "max_segments", "max_characters", "max_subject_length"}
    )

    #: The provider's documented limit on one sender, (requests, per seconds), unless the config's ``rate`` says
    #: otherwise: ``PublishContext.pace`` holds every request to it, in this process and, when deployed, across
    #: workers. None: the channel sends nothing to a provider.
    rate: ClassVar[tuple[int, float] | None] = None
    #: Whether ``publish`` calls ``context.pace()`` before each request to its provider and
    #: ``context.stop_if_asked`` between the recipients or parts of one publication. False: a publication is one
    #: post (its ``rate`` counts posts), paced and stopped before it as a whole (``before_publish``).
    paces_requests: ClassVar[bool] = True
    #: How much earlier than our claim of a request the provider's clock may date the post it made: a lookup of a
    #: request whose answer was lost takes only a post made at or after the claim less this
    #: (:func:`carecast.inflight.made_since`), never an older one that says the same.
    lookup_skew: ClassVar[timedelta] = timedelta(minutes=2)

    def __init__(self, instance: str, config: ChannelSettings, settings: Settings) -> None:
        self.instance = instance
        self.config = config
        self.settings = settings
        self.practice = settings.practice
        self._bucket: Pacer | None = None
        #: Makes the practice's own links short (``links.domain``): (item id, channel, full URL) -> short URL; set by
        #: ``pipeline.adapt`` when the practice has ``links``; None keeps full URLs (``links: off``, tests).
        self.shortener: Callable[[str, str, str], str] | None = None
        self._templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(self.template_dirs()),
            autoescape=jinja2.select_autoescape(["html", "htm", "html.j2", "htm.j2"]),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )

    def template_dirs(self) -> list[Path]:
        """Where this channel's templates are looked for, first match wins: a folder named after the instance
        (``templates/provider-update/``, so two newsletters of one practice each have their own), then the type's."""
        names = [self.instance, self.name] if self.instance != self.name else [self.name]
        return [folder / name for folder in self.settings.template_folders() for name in names]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        unknown = set(cls.limits) - cls.known_limits
        if unknown:
            raise TypeError(f"{cls.__name__}.limits has unknown limits: {sorted(unknown)}")

    # -- rendering ---------------------------------------------------------------------------------------------

    def limit(self, key: str) -> int | None:
        """The limit in force: the class's, lowered by the config's key of the same name."""
        declared = self.limits.get(key)
        configured = getattr(self.config, key, None)
        if declared is None:
            return configured
        return declared if configured is None else min(declared, configured)

    def render(self, items: Sequence[ContentItem]) -> Draft:
        """Compose a draft for ``items`` and enforce this channel's rules on it.

        Raises RenderError with the reason when a template fails or the draft breaks a rule.
        """
        ids = [item.id for item in items]
        for item in items:
            self.admit(item)
        try:
            draft = self.compose(items)
        except jinja2.TemplateError as exc:
            raise RenderError(self.instance, f"template error: {exc}", ids) from exc
        return self.enforce(draft)

    def admit(self, item: ContentItem) -> None:
        """Check that ``item`` may appear on this channel at all.

        Raises RenderError when it mentions a patient without a current written authorization for this channel.
        """
        # HIPAA 45 CFR 164.508(a)(3): a patient in marketing needs a written authorization covering this channel.
        if not item.mentions_patient:
            return
        covered = self.instance in item.authorized_channels or self.name in item.authorized_channels
        expires = item.authorization_expires
        if not covered or (expires is not None and expires <= now_utc()):
            raise RenderError(
                self.instance,
                "mentions a patient without a current written authorization for this channel (HIPAA)",
                [item.id],
            )

    def enforce(self, draft: Draft) -> Draft:
        """Measure every part against the limits in force; return the draft with its measures.

        Raises RenderError naming the part and the limit it breaks.
        """
        measures: dict[str, Any] = dict(draft.measures)
        problems = []
        parts_measured = []
        for number, part in enumerate(draft.parts, start=1):
            measured: dict[str, Any] = {}
            if (limit := self.limit("max_weighted_length")) is not None:
                x = x_measure(part)
                measured["weighted_length"] = x.weighted_length
                if x.weighted_length > limit:
                    problems.append(f"part {number} weighs {x.weighted_length} of {limit} characters")
            if (limit := self.limit("max_segments")) is not None:
                sms = sms_measure(part)
                measured.update(encoding=sms.encoding, segments=sms.segments)
                if sms.segments > limit:
                    problems.append(f"part {number} needs {sms.segments} {sms.encoding} segments of {limit}")
            if (limit := self.limit("max_characters")) is not None:
                count = self.count_characters(part)
                measured["characters"] = count
                if count > limit:
                    problems.append(f"part {number} has {count} of {limit} characters")
            parts_measured.append(measured)
        if (limit := self.limit("max_subject_length")) is not None and draft.subject is not None:
            measures["subject_length"] = len(draft.subject)
            if len(draft.subject) > limit:
                problems.append(f"subject has {len(draft.subject)} of {limit} characters")
        if not draft.parts or not all(part.strip() for part in draft.parts):
            problems.append("empty text")
        if problems:
            raise RenderError(self.instance, "; ".join(problems), draft.item_ids)
        measures["parts"] = parts_measured
        return Draft(**{**draft.__dict__, "measures": measures})

    def count_characters(self, text: str) -> int:
        """Characters as the provider counts them for ``max_characters``; plain code points unless overridden."""
        return len(text)

    def link(self, item: ContentItem) -> str | None:
        """The item's link tagged with this channel's UTM values, when it points at the practice's site; with
        ``links`` configured, the practice's short link to that (README "Did it work?"). Every link a channel sends
        is built here, so this is the one place a link becomes short. Raises LedgerError when a short link cannot
        be made."""
        if item.url is None:
            return None
        campaign = item.campaign or self.config.campaign or self.practice.utm.campaign
        tagged = add_utm(item.url, self.utm_source, self.utm_medium, campaign, own_host=self.practice.host)
        return tagged if self.shortener is None else self.shortener(item.id, self.instance, tagged)

    def template(self, name: str, **context: Any) -> str:
        """Render ``templates/<channel>/<name>`` with the practice, voice and ``context``.

        Raises jinja2.TemplateError, which ``render`` turns into RenderError.
        """
        return (
            self._templates.get_template(name)
            .render(
                practice=self.practice, voice=self.config.voice or self.practice.voice, channel=self.config, **context
            )
            .strip()
        )

    @abstractmethod
    def compose(self, items: Sequence[ContentItem]) -> Draft:
        """Turn items into a draft; pure: the same items and config always give the same draft.

        Raises RenderError (or jinja2.TemplateError) when the items cannot be expressed on this channel.
        """

    # -- publishing --------------------------------------------------------------------------------------------

    @abstractmethod
    def publish(self, draft: Draft, context: PublishContext) -> Receipt:
        """Send ``draft`` through the live transport when credentials are configured, else to the outbox.

        Raises PublishError(transient=...) when it could not be sent (all of it: a fan-out that reached only some
        recipients raises a transient error and is resumed by the next run); never returns a failure value. Raises
        CredentialError unchanged when a credential cannot be read, before anything is sent: the pipeline, not the
        channel, decides what that means.
        """

    @classmethod
    def routes(cls, channels: Sequence[Self]) -> Sequence[Route]:
        """The inbound endpoints for ``channels``, this class's configured instances (all at once, since several
        instances may share one endpoint, e.g. one number's status callbacks); none by default.

        Called when the webhook server starts. Raises CredentialError when a secret the endpoints need cannot be
        read, so a missing one stops the server at start rather than a request later.
        """
        return ()

    def sender(self) -> str | None:
        """Who the provider sees sending (a number, an account, a login; never a secret); None for the outbox.

        By default the practice's account on this channel when its config has ``credentials``: a channel whose
        account several practices may share names it more exactly, so they share its ``rate_limit``.
        """
        if getattr(self.config, "credentials", None) is None:
            return None
        return f"{self.settings.slug} {self.instance} {self.config.account}"

    def sending_rate(self) -> tuple[int, float] | None:
        """The most this sender may send, (requests, per seconds): the config's ``rate``, else the class's."""
        return self.rate if self.config.rate is None else parse_rate(self.config.rate)

    def rate_limit(self) -> RateLimit | None:
        """The limit ``publish`` must pace its requests by: ``sending_rate`` for this sender; None without either."""
        identity, rate = self.sender(), self.sending_rate()
        if rate is None or identity is None:
            return None
        return RateLimit(f"carecast-{self.name}-{slugify(identity)}", *rate)

    def paced(self, shared: Callable[[], None] = unpaced) -> Callable[[], None]:
        """The ``PublishContext.pace`` for this sender: a token bucket at ``sending_rate`` (one per channel object,
        shared by its threads), then ``shared`` (a slot of the limit the workers share, when deployed)."""
        limit = self.rate_limit()
        if limit is None:
            return shared
        if self._bucket is None:
            self._bucket = Pacer(limit.requests, limit.seconds)
        bucket = self._bucket

        def pace() -> None:
            bucket.wait()
            shared()

        return pace

    def before_publish(self, context: PublishContext) -> None:
        """What the pipeline calls before ``publish``: for a channel whose publish does not pace its own requests
        (``paces_requests``), a stop asked for ends it here, then it waits for one slot of its rate.

        Raises PublishError (transient) when the process is asked to stop; whatever ``context.pace`` raises.
        """
        if not self.paces_requests:
            context.stop_if_asked(self.instance)
            context.pace()

    def not_at_provider(self, draft: Draft, addresses: Sequence[str]) -> list[str] | None:
        """Which of ``addresses`` (recipients of ``draft``) the provider has no record of being sent it, so
        ``carecast resolve --sent`` refuses them; None when the provider cannot be asked (the default).

        Raises CredentialError, or PublishError when the provider cannot be reached.
        """
        return None

    def engagement(self, provider_ids: Sequence[str]) -> Mapping[str, Engagement]:
        """The provider's engagement numbers for these posts (their ids as ``Receipt.provider_ids`` recorded them),
        by id; a channel whose numbers are per place rather than per post (GBP) answers under its own key. Nothing
        by default, and nothing without credentials (the outbox has no numbers).

        A metric the provider refuses (a missing permission, a retired metric) is a ``problem`` of the answer, not
        a raise. Raises PublishError when the provider cannot be asked at all, CredentialError for a secret.
        """
        return {}

    def send_staff_mail(self, message: EmailMessage) -> str | None:
        """Send a message to the practice's own staff (the weekly report) through this channel's mail server, and
        say where it went; None when this channel sends no mail (the default) or has no server configured.

        Raises PublishError when the server refuses it.
        """
        return None

    def verify(self) -> str:
        """Prove the configured account works without sending anything; say what was checked.

        Raises CredentialError or PublishError when it does not. Without credentials there is nothing to check.
        """
        return f"no credentials: publishes to the outbox ({self.settings.path(self.settings.outbox).resolve()})"

    def send_notice(self, email: EmailMessage) -> str | None:
        """Send staff a notice (:mod:`carecast.alerts`) through this channel's own account, when it can mail one
        (a newsletter with SMTP credentials); returns where it went, else None (the default: it cannot).

        Raises CareCastError when it can but the sending failed.
        """
        return None


GROUP = "carecast.channels"


@cache
def _registered() -> dict[str, EntryPoint]:
    # Kept: a scan of the installed distributions takes ~30 ms, and a practice's settings ask for every channel
    # type they use. A type not found is looked for again (a plugin installed since), so nothing is hidden.
    return {entry.name: entry for entry in entry_points(group=GROUP)}


def installed() -> list[str]:
    """The names of every installed channel, without importing any."""
    _registered.cache_clear()
    return sorted(_registered())


@cache
def channel_class(kind: str) -> type[Channel]:
    """The channel class registered as ``kind``.

    Raises ConfigError (for the ``type`` key) when no such channel is installed, and ChannelError when its plugin
    cannot be imported or declares another name than its entry point's.
    """
    registered = _registered()
    if kind not in registered:
        _registered.cache_clear()
        registered = _registered()
    if kind not in registered:
        known = ", ".join(sorted(registered)) or "none installed"
        raise ConfigError("", [("type", f"one of the installed channels ({known}), not {kind!r}")])
    entry = registered[kind]
    try:
        cls = entry.load()
    except Exception as exc:  # a third party's import error must name the plugin, whatever it is
        raise ChannelError(kind, f"plugin {entry.value} cannot be loaded: {exc}") from exc
    if getattr(cls, "name", None) != kind:
        raise ChannelError(kind, f"{entry.value} declares name {getattr(cls, 'name', None)!r}")
    return cls


def make_channel(settings: Settings, instance: str) -> Channel:
    """The configured channel ``instance`` (a key of ``channels:``), ready to render and publish."""
    config = settings.channels[instance]
    return channel_class(config.type)(instance, config, settings)
