"""The channel contract as pytest tests: subclass :class:`ChannelContract` in a test module to run it on a channel.

Every rule is one test named for it, so a broken plugin fails naming the rule it breaks:

- ``test_limits_are_class_data``: ``name`` is the entry-point name, ``limits`` are class data CareCast knows;
- ``test_config_forbids_unknown_keys``: the channel's ``Config`` is strict;
- ``test_render_is_pure``: the same items render the same draft, within the declared limits, writing nothing;
- ``test_a_patient_story_without_authorization_is_refused``;
- ``test_without_credentials_it_writes_the_outbox``;

and, when the subclass gives a fake provider (``provider`` and ``live_section``):

- ``test_outbox_equals_request``: what the outbox shows is what the provider receives;
- ``test_claims_before_sending``: every delivery reaches the provider after its recipient or part is claimed;
- ``test_a_rerun_sends_nothing``: publishing the same publication again delivers nothing more;
- ``test_no_secret_in_outputs``: the credential is in no file, receipt, log line or error.

Requires pytest (CareCast's ``test`` extra).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self

import pytest
import yaml
from pydantic import ValidationError

from carecast.channel import Channel, PublishContext, channel_class, make_channel
from carecast.config import Settings
from carecast.errors import CareCastError, RenderError
from carecast.ledger import Ledger
from carecast.model import ContentItem, Draft, content_hash
from carecast.outbox import Outbox
from carecast.practice import load_settings
from carecast.testing.providers import LocalHttpServer, RecordedRequest

#: An item every channel takes: a blog post with a summary and an image.
ITEM = ContentItem(
    id="rss:blog:contract",
    source="blog",
    kind="post",
    title="Five stretches for desk workers",
    url="https://www.oakviewpt.com/blog/desk-stretches",
    summary_html="<p>Sitting all day? These <strong>five stretches</strong> take ten minutes.</p>",
    summary_text="Sitting all day? These five stretches take ten minutes.",
    published=datetime(2026, 11, 2, 15, 0, tzinfo=UTC),
    content_hash=content_hash("contract"),
    image_url="https://www.oakviewpt.com/images/blog/desk-setup.jpg",
    image_alt="A laptop raised on a stand next to an external keyboard on a tidy desk",
)

#: The practice the kit's channels belong to; ``outbox`` and ``ledger`` are filled in per test.
PRACTICE: dict[str, Any] = {
    "name": "Oakview Physical Therapy",
    "short_name": "Oakview PT",
    "timezone": "America/Chicago",
    "website": "https://www.oakviewpt.com",
    "email": "hello@oakviewpt.com",
    "phone": "+1 312 555 0142",
    "address": {"street": "1200 W Oakview Ave", "city": "Chicago", "region": "IL", "postal_code": "60614"},
    "utm": {"campaign": "oakview_blog"},
}

#: The environment variable the kit puts the provider's credential in (``{"env": SECRET_ENV}`` in a section).
SECRET_ENV = "CARECAST_CONTRACT_SECRET"

#: How a rerun of a publication already sent may end besides a receipt: CareCast's own errors, said plainly.
RERUN_ENDINGS = (CareCastError,)


def practice_config(folder: Path, channels: dict[str, dict[str, Any]], **more: Any) -> Path:
    """A practice config in ``folder`` with these channel sections (its ledger and outbox inside ``folder``) and
    ``more`` top-level keys (``templates``: the folder of the channels' templates)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "practice": PRACTICE,
        "ledger": {"url": f"sqlite:///{folder / 'ledger.db'}"},
        "outbox": str(folder / "outbox"),
        "sources": {},
        "channels": channels,
        **more,
    }
    file = folder / "carecast.yaml"
    file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return file


class FakeProvider(Protocol):
    """What the provider rules need of a fake provider: a ``with`` block that serves it, its address, and a look at
    each thing that arrives before it is answered. :class:`LocalHttpServer` is one; a fake of another protocol (an
    SMTP server) gives the same three and says what a delivery is in :meth:`ChannelContract.sent`."""

    @property
    def url(self) -> str:
        """Where the channel reaches the provider (``live_section`` reads it)."""
        ...

    def watch(self, watcher: Callable[[Any], None]) -> None:
        """Call ``watcher`` with each request (or message) once it arrived and before it is answered."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


@dataclass
class Publishing:
    """A channel ready to publish one claimed publication, and where it writes."""

    channel: Channel
    ledger: Ledger
    outbox: Path
    #: The moment it publishes at (``PublishContext.now``); None: the real clock.
    now: datetime | None = None

    def context(self, draft: Draft) -> PublishContext:
        """``draft`` saved and claimed as the pipeline claims one before publishing it."""
        publication = self.ledger.claim(self.ledger.save_draft(draft, "default", "approved"))
        if self.now is None:
            return PublishContext(publication, Outbox(self.outbox), self.ledger)
        return PublishContext(publication, Outbox(self.outbox), self.ledger, now=self.now)


def sends(provider: LocalHttpServer) -> list[RecordedRequest]:
    """The requests that change something at the provider (the default of ``ChannelContract.sent``)."""
    return [request for request in provider.requests if request.method in ("POST", "PUT", "PATCH", "DELETE")]


class ChannelContract:
    """The contract kit: subclass it as ``class TestMyChannel(ChannelContract)`` and set ``channel_type``.

    ``section`` is the channel's config section without credentials (``more_config``: other top-level keys). To
    run the provider rules, override ``provider`` (a fake provider server, not started, accepting ``secret`` as its
    credential) and ``live_section`` (the section pointing at it, the credential read from the environment variable
    ``SECRET_ENV``); ``sent`` and ``in_outbox`` say what a delivery is and how it compares with an outbox file when
    the defaults (each changing request one delivery, compared by its body's bytes) do not fit; ``now`` fixes the
    moment it publishes at when what it sends depends on the hour.
    """

    channel_type: ClassVar[str]
    section: ClassVar[dict[str, Any]] = {}
    #: Top-level config keys beside the practice's, e.g. ``{"templates": "/abs/path/templates"}``.
    more_config: ClassVar[dict[str, Any]] = {}
    item: ClassVar[ContentItem] = ITEM
    #: The moment the channel publishes at, for a channel whose sending depends on the hour (an SMS recipient's
    #: quiet hours); None: the real clock.
    now: ClassVar[datetime | None] = None

    # --- what a subclass may override ------------------------------------------------------------------------

    def provider(self, secret: str) -> FakeProvider | None:
        """A fake provider server accepting ``secret``; None (the default) skips the provider rules."""
        return None

    def live_section(self, provider_url: str) -> dict[str, Any]:
        """The channel's section sending to the provider at ``provider_url``, credentials from ``SECRET_ENV``."""
        raise NotImplementedError("override live_section with provider")

    def sent(self, provider: Any) -> list[Any]:
        """The deliveries ``provider`` received so far, one entry each (a post, or a message to one recipient), in
        order: the outbox must equal them, and the rules count deliveries by them, so a request that delivers
        nothing by itself (a login, an upload) is left out or folded into its delivery's entry. Default, for a
        :class:`LocalHttpServer`: the body of each request that changes something (:func:`sends`).

        Raises:
            NotImplementedError: ``provider`` is not a :class:`LocalHttpServer` (override ``sent`` for it).
        """
        if not isinstance(provider, LocalHttpServer):
            raise NotImplementedError(f"override sent for a {type(provider).__name__}")
        return [request.raw for request in sends(provider)]

    def in_outbox(self, written: Path) -> list[Any]:
        """What the outbox file ``written`` says would be sent (default: its bytes, as one request)."""
        return [written.read_bytes()]

    # --- fixtures --------------------------------------------------------------------------------------------

    @pytest.fixture
    def kind(self) -> str:
        return self.channel_type

    @pytest.fixture
    def settings(self, kind: str, tmp_path: Path) -> Settings:
        """The practice's settings with the channel under test; override to test a channel of another config."""
        sections = {kind: {"type": kind, **self.section}}
        return load_settings(practice_config(tmp_path / "practice", sections, **self.more_config))

    @pytest.fixture
    def channel(self, settings: Settings, kind: str) -> Channel:
        names = [name for name, config in settings.channels.items() if config.type == kind]
        assert names, f"the config has no channel of type {kind!r}"
        return make_channel(settings, names[0])

    @pytest.fixture
    def offline(self, channel: Channel, tmp_path: Path) -> Iterator[Publishing]:
        """The channel without credentials, with a ledger and an outbox of its own."""
        ledger = Ledger(f"sqlite:///{tmp_path / 'offline-ledger.db'}")
        try:
            yield Publishing(channel, ledger, tmp_path / "outbox", self.now)
        finally:
            ledger.close()

    @pytest.fixture
    def live(self, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Publishing, Any]]:
        """The channel configured for a started fake provider, and the provider (the provider rules skip without)."""
        secret = f"kit-{secrets.token_hex(16)}"
        provider = self.provider(secret)
        if provider is None:
            pytest.skip("no fake provider given (ChannelContract.provider): the provider rules are not run")
        monkeypatch.setenv(SECRET_ENV, secret)
        with provider:
            section = {"type": kind, **self.live_section(provider.url)}
            settings = load_settings(practice_config(tmp_path / "live", {kind: section}, **self.more_config))
            ledger = Ledger(settings.ledger_url())
            try:
                live = Publishing(make_channel(settings, kind), ledger, tmp_path / "live" / "outbox", self.now)
                yield live, (provider, secret)
            finally:
                ledger.close()

    # --- the rules without a provider ------------------------------------------------------------------------

    def test_limits_are_class_data(self, kind: str, channel: Channel) -> None:
        cls = channel_class(kind)
        assert cls.name == kind, f"the entry point {kind!r} names a channel called {cls.name!r}"
        assert isinstance(cls.__dict__.get("limits", cls.limits), dict) and "limits" not in vars(channel), (
            "limits are class data (a ClassVar dict), not set per instance"
        )
        assert set(cls.limits) <= cls.known_limits, f"unknown limits: {set(cls.limits) - cls.known_limits}"

    def test_config_forbids_unknown_keys(self, kind: str, channel: Channel) -> None:
        section = channel.config.model_dump(mode="json", exclude_unset=True)
        with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
            channel_class(kind).Config.model_validate({**section, "no_such_key": 1})

    def test_render_is_pure(self, channel: Channel, tmp_path: Path) -> None:
        before = sorted(tmp_path.rglob("*"))
        first, second = channel.render([self.item]), channel.render([self.item])
        assert first == second, "the same items rendered two different drafts"
        assert first.item_ids == (self.item.id,) and first.parts and all(part.strip() for part in first.parts)
        assert channel.enforce(first) == first
        assert sorted(tmp_path.rglob("*")) == before, "rendering wrote files"

    def test_a_patient_story_without_authorization_is_refused(self, channel: Channel) -> None:
        with pytest.raises(RenderError, match="HIPAA"):
            channel.render([replace(self.item, id="md:stories:patient", mentions_patient=True)])

    def test_without_credentials_it_writes_the_outbox(self, offline: Publishing) -> None:
        channel = offline.channel
        assert "outbox" in channel.verify()
        draft = channel.render([self.item])
        context = offline.context(draft)
        written = Path(channel.publish(draft, context).location)
        assert written.parent == offline.outbox / channel.instance and written.stem == context.key
        assert written.stat().st_size > 0

    # --- the rules with a fake provider ----------------------------------------------------------------------

    def test_outbox_equals_request(self, live: tuple[Publishing, Any], offline: Publishing) -> None:
        publishing, (provider, _) = live
        draft = publishing.channel.render([self.item])
        publishing.channel.publish(draft, publishing.context(draft))
        dry = offline.channel.render([self.item])
        written = Path(offline.channel.publish(dry, offline.context(dry)).location)
        assert self.in_outbox(written) == self.sent(provider), "the outbox does not show what the provider received"

    def test_claims_before_sending(self, live: tuple[Publishing, Any]) -> None:
        publishing, (provider, _) = live
        draft = publishing.channel.render([self.item])
        context = publishing.context(draft)
        unclaimed: list[str] = []

        def claimed_first(arrived: Any) -> None:
            # Looked at before the provider answers: every delivery so far, this one included, has its claim.
            if len(publishing.ledger.deliveries(context.publication_id)) < len(self.sent(provider)):
                unclaimed.append(_named(arrived))

        provider.watch(claimed_first)
        publishing.channel.publish(draft, context)
        assert self.sent(provider), "nothing reached the provider"
        assert unclaimed == [], f"sent before claiming (claim a recipient or part first): {unclaimed}"

    def test_a_rerun_sends_nothing(self, live: tuple[Publishing, Any]) -> None:
        publishing, (provider, _) = live
        draft = publishing.channel.render([self.item])
        context = publishing.context(draft)
        publishing.channel.publish(draft, context)
        first = len(self.sent(provider))
        with contextlib.suppress(*RERUN_ENDINGS):
            publishing.channel.publish(draft, context)
        assert len(self.sent(provider)) == first, "publishing the same publication again sent it again"

    def test_no_secret_in_outputs(
        self, live: tuple[Publishing, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        publishing, (_, secret) = live
        caplog.set_level(logging.DEBUG)
        draft = publishing.channel.render([self.item])
        context = publishing.context(draft)
        said: list[str] = [repr(publishing.channel.publish(draft, context))]
        try:
            publishing.channel.publish(draft, context)
        except RERUN_ENDINGS as exc:
            said.append(f"{exc!r} {exc}")
        said += [record.getMessage() for record in caplog.records]
        said.append(repr(publishing.ledger.progress(context.publication_id)))
        said += [repr(record) for record in publishing.ledger.deliveries(context.publication_id).values()]
        assert [text for text in said if secret in text] == [], "the credential is in a receipt, error or log line"
        files = [path for path in tmp_path.rglob("*") if path.is_file() and secret.encode() in path.read_bytes()]
        assert files == [], f"the credential is written in {files}"


def _named(arrived: Any) -> str:
    """A request as ``METHOD /path``; anything else (a message) as itself."""
    if isinstance(arrived, RecordedRequest):
        return f"{arrived.method} {arrived.path}"
    return repr(arrived)


__all__ = ["ITEM", "SECRET_ENV", "ChannelContract", "FakeProvider", "Publishing", "practice_config", "sends"]
