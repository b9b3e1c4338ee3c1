"""Load and validate a practice's configuration (``config/carecast.yaml``) before anything runs.

Every section is a pydantic model that forbids unknown keys. A channel's own section is validated by the ``Config``
class its ``type`` names, which the caller looks up (:func:`carecast.practice.load_settings` asks the channel
registry): this module knows no channel. Paths in the file are relative to the file's folder, a relative SQLite
ledger to the project root (:mod:`carecast.project`); both are made absolute when the file is read, so no path
depends on the working directory. Any problem raises :class:`~carecast.errors.ConfigError` naming the file, the key
path and what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import Field, HttpUrl, StrictBool, ValidationError, ValidationInfo, field_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from carecast.audiences import AudienceConfig, check_audiences
from carecast.config_sources import CampaignSource as CampaignSource
from carecast.config_sources import MarkdownSource, ObservanceSource, SourceConfig, refuse_internal
from carecast.config_sources import RssSource as RssSource
from carecast.errors import ConfigError
from carecast.pacing import parse_rate
from carecast.project import PRACTICES_DIR, project_root, resolve_ledger_url
from carecast.schedule import Every, LatePolicy, Slot
from carecast.strict import Strict

DEFAULT_CONFIG = Path("config/carecast.yaml")
#: A practice file's name: its slug, in every deployment name, tag, artifact key, ledger schema and outbox folder.
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


def slugify(text: str) -> str:
    """Lower-case letters, digits and single dashes: ``Oakview PT`` -> ``oakview-pt``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def is_practice_file(file: Path) -> bool:
    """Whether ``file`` is one of many practices (``<config>/practices/<slug>.yaml``), not the single config."""
    return file.parent.name == PRACTICES_DIR


def practice_files(config_dir: Path | str = DEFAULT_CONFIG.parent) -> list[Path]:
    """Every practice's config under ``config_dir``: ``carecast.yaml`` when present, then ``practices/*.yaml``."""
    folder = Path(config_dir)
    single = folder / DEFAULT_CONFIG.name
    return ([single] if single.is_file() else []) + sorted((folder / PRACTICES_DIR).glob("*.yaml"))


class Address(Strict):
    street: str
    city: str
    region: str
    postal_code: str
    country: str = "US"

    def one_line(self) -> str:
        return f"{self.street}, {self.city}, {self.region} {self.postal_code}"


class Voice(Strict):
    """How the practice sounds; templates read it."""

    tone: str = "warm, plain-spoken, encouraging"
    sign_off: str = "See you in the clinic!"
    hashtags: list[str] = Field(default_factory=list)
    hashtags_by_language: dict[str, list[str]] = Field(
        default_factory=dict, description="hashtags for an item in another language, by its ISO 639-1 code (es: [...])"
    )

    def hashtags_for(self, language: str | None) -> list[str]:
        """The hashtags of an item in ``language``: that language's when the config names them, else ``hashtags``."""
        return self.hashtags_by_language.get(language or "", self.hashtags)


class UtmDefaults(Strict):
    campaign: str = Field(pattern=r"^[a-z0-9_\-]+$", description="utm_campaign when the item names none")


class Practice(Strict):
    name: str
    short_name: str = Field(max_length=20, description="sender prefix in texts, e.g. 'Oakview PT'")
    timezone: str
    website: HttpUrl
    email: str
    phone: str
    address: Address
    voice: Voice = Voice()
    utm: UtmDefaults
    fax: str | None = Field(None, description="the fax number referrals are sent to (the provider update shows it)")
    referral_line: str | None = Field(None, description="the phone line referring offices call")
    language: str = Field(
        "en", pattern=r"^[a-z]{2,3}$", description="ISO 639 code of the language the practice writes in (Mastodon)"
    )
    staff: list[str] = Field(
        default_factory=list, description="names of the practice's people, never taken for patients (PHI check)"
    )
    partners: list[str] = Field(
        default_factory=list,
        description="partners, sponsors and places the practice names, never taken for people (PHI check)",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"an IANA time zone such as America/Chicago, not {value!r}") from exc
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def host(self) -> str:
        return self.website.host or ""


class Ledger(Strict):
    url: str = "sqlite:///.carecast/ledger.db"
    claim_timeout: float = Field(
        600.0, gt=0, description="seconds a claim stays untouched before its sender counts as dead and it is resumed"
    )
    retry_budget: float = Field(
        30.0, ge=0, description="seconds a ledger write is retried while the database is unreachable"
    )
    delivery_chunk: int = Field(
        1,
        ge=1,
        description="recipients a fan-out claims and records per ledger transaction: faster when larger, but a "
        "crash leaves up to this many unknown",
    )

    @field_validator("url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        try:
            make_url(value).get_dialect()
        except (ArgumentError, ValueError) as exc:  # NoSuchModuleError (unknown dialect) is an ArgumentError
            raise ValueError(
                f"a SQLAlchemy database URL such as sqlite:///.carecast/ledger.db or "
                f"postgresql+psycopg://user@host/db, not {value!r}"
            ) from exc
        return value


class ChannelSettings(Strict):
    """Keys every channel section has; a channel's ``Config`` subclasses this and adds its own."""

    type: str
    enabled: bool = True
    approval: Literal["auto", "review"] = "auto"
    account: str = Field("default", description="the account published to; part of the never-twice key")
    sources: list[str] | None = Field(None, description="only items of these sources; all when absent")
    audience: str | None = Field(
        None,
        description="newsletter and sms: the audience (audiences.<name>) it addresses; absent: its subscriber "
        "file, audience/<type>.csv",
    )
    segment: str | None = Field(None, description="only the audience's people in this segment of it")
    kinds: list[Literal["post", "observance", "recognition"]] | None = Field(
        None, description="only items of these kinds; all when absent"
    )
    voice: Voice | None = Field(
        None, description="how this channel sounds (templates read it); the practice's when absent"
    )
    max_items_per_run: int = Field(10, ge=1)
    max_age_days: int = Field(60, ge=1, description="items published longer ago than this are not sent")
    campaign: str | None = Field(None, pattern=r"^[a-z0-9_\-]+$")
    schedule: list[Slot] = Field(
        default_factory=list, description="publishing slots in the practice's zone; none: every run publishes"
    )
    late: LatePolicy = Field(default_factory=LatePolicy, description="skip, or {send_within: 2h}, after a slot")
    rate: str | None = Field(
        None,
        description="the most this sender may send, e.g. '1/s', '50/s', '300/5min', '1000/h': requests are paced "
        "at it (a token bucket) so the provider never answers 429; absent: the provider's documented limit",
    )
    concurrency: int = Field(1, ge=1, description="requests in flight at once, where the channel allows more than 1")

    #: The most ``concurrency`` may be for this channel type (its provider's limit on requests at once).
    max_concurrency: ClassVar[int] = 1

    @field_validator("rate")
    @classmethod
    def _a_rate(cls, value: str | None) -> str | None:
        if value is not None:
            parse_rate(value)
        return value

    @field_validator("concurrency")
    @classmethod
    def _concurrency_allowed(cls, value: int) -> int:
        if value > cls.max_concurrency:
            one = " (this channel sends one request at a time)" if cls.max_concurrency == 1 else ""
            raise ValueError(f"at most {cls.max_concurrency}{one}, not {value}")
        return value


class Notify(Strict):
    """Where a failed or crashed run is reported (practice, channel, reason); nowhere when absent."""

    # Before webhook: webhook's check reads it.
    allow_private: StrictBool = Field(
        False, description="the webhook may be on a private, loopback or link-local address"
    )
    webhook: HttpUrl | None = Field(None, description="receives a JSON POST for every failed or crashed run")

    @field_validator("webhook")
    @classmethod
    def _public_webhook(cls, webhook: HttpUrl | None, info: ValidationInfo) -> HttpUrl | None:
        if webhook and webhook.host:
            refuse_internal(webhook.host, info, "a webhook")
        return webhook


class Links(Strict):
    """``links``: the practice's own short links (``https://<domain>/<code>``) in place of its long UTM-tagged ones,
    redirected and counted by ``carecast webhooks`` (README "Did it work?"). ``links: off`` keeps full URLs."""

    domain: str = Field(
        max_length=253,
        pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$",
        description="the short-link host the practice points at `carecast webhooks`, e.g. go.oakviewpt.com",
    )
    email_per_recipient: bool = Field(
        False,
        description="each newsletter recipient gets codes of their own, so the report counts people, not clicks "
        "(the codes stay random; the ledger knows whose they are)",
    )


class Report(Strict):
    """``report``: the weekly "did it work?" report and the providers' numbers it reads (``metrics``)."""

    to: str | None = Field(None, description="the staff address the weekly report goes to; default practice.email")
    schedule: list[Slot] = Field(
        default_factory=lambda: [Slot.model_validate({"days": ["mon"], "at": "08:00"})],
        description="when the weekly report is sent, in the practice's zone",
    )
    metrics_days: int = Field(14, ge=1, le=90, description="the providers' numbers are read for posts this young")
    metrics_every_hours: int = Field(6, ge=1, le=168, description="how often the metrics deployment reads them")


class Settings(Strict):
    """The whole file, with channel sections validated by their plugins."""

    practice: Practice
    ledger: Ledger = Ledger()
    outbox: Path = Path("../.carecast/outbox")
    templates: Path = Path("templates")
    audience: Path = Path("audience")
    ingest: Every = Field(default_factory=lambda: Every(every_minutes=30), description="how often sources are read")
    sources: dict[str, SourceConfig]
    audiences: dict[str, AudienceConfig] = Field(
        default_factory=dict, description="who newsletter and SMS channels address (README 'Who hears what')"
    )
    channels: dict[str, ChannelSettings]
    notify: Notify = Notify()
    links: Links | None = Field(
        None, description="short links: {domain: go.example.com}; off (default) keeps full URLs"
    )
    report: Report = Report()

    @field_validator("links", mode="before")
    @classmethod
    def _links_off(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `off` as false; "off" quoted means the same.
        return None if value is False or value == "off" else value

    #: The absolute folder relative paths of the file are resolved against: the file's (the config folder, for a
    #: practice file).
    base_dir: Path = Path(".")
    file: Path = DEFAULT_CONFIG

    @cached_property
    def root(self) -> Path:
        """The absolute project root (:func:`carecast.project.project_root`): a relative SQLite ledger lives under
        it."""
        return project_root(self.base_dir / self.file.name)

    def path(self, relative: Path | str) -> Path:
        """Resolve a path of the file against the file's folder (the config folder, for a practice file)."""
        candidate = Path(relative)
        return candidate if candidate.is_absolute() else (self.base_dir / candidate)

    @property
    def slug(self) -> str:
        """The practice's slug: a practice file's name, else its short name slugified (``oakview-pt``)."""
        return self.file.stem if is_practice_file(self.file) else slugify(self.practice.short_name)

    def template_folders(self) -> list[Path]:
        """Where templates are looked for, first match wins: the practice's own, then (for a practice file) the
        shared ``templates`` folder of the config folder."""
        own = self.path(self.templates)
        shared = self.path("templates")
        return [own, shared] if is_practice_file(self.file) and own != shared else [own]

    def ledger_url(self) -> str:
        """The ledger URL, a relative SQLite path resolved against the project root (whatever the working folder).

        A practice file on PostgreSQL keeps its tables in a schema of its own, ``carecast_<slug>`` (the URL's
        ``search_path``), so practices sharing one database never share a row: item ids, accounts and subscribers
        of two practices may well be the same.
        """
        url = resolve_ledger_url(self.ledger.url, self.root)
        if url.startswith("postgresql") and is_practice_file(self.file):
            schema = "carecast_" + self.slug.replace("-", "_")
            return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
        return url


def _key_path(location: tuple[Any, ...], prefix: tuple[Any, ...] = ()) -> str:
    parts = [str(part) for part in (*prefix, *location)]
    # pydantic puts the discriminator value in the path (sources.blog.rss.url); staff wrote sources.blog.url.
    if len(parts) >= 3 and parts[0] == "sources":
        del parts[2]
    return ".".join(parts)


def expectation(error: Mapping[str, Any]) -> str:
    """What a pydantic error says was expected, in words staff can act on."""
    if error["type"] == "extra_forbidden":
        return "unknown key (check its spelling; unknown keys are not allowed)"
    if error["type"] == "missing":
        return "required key is missing"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _problems(exc: ValidationError, prefix: tuple[Any, ...] = ()) -> list[tuple[str, str]]:
    return [(_key_path(err["loc"], prefix), expectation(err)) for err in exc.errors()]


def read_yaml(file: Path) -> Any:
    """Read one YAML file.

    Raises ConfigError when it cannot be read or is not valid YAML, with the line of the mistake.
    """
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(file, [("", f"cannot be read: {exc.strerror or exc}")]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(file, [("", f"is not UTF-8 text (at byte offset {exc.start}); save it as UTF-8")]) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise ConfigError(file, [("", f"is not valid YAML ({where}): {getattr(exc, 'problem', exc)}")]) from exc


#: The ``Config`` class of the channel type named; raises ConfigError (for the ``type`` key) when none is known.
ChannelConfigLookup = Callable[[str], type["ChannelSettings"]]


def parse_settings(file: Path | str, channel_config: ChannelConfigLookup) -> Settings:
    """Read and validate ``file``, each channel section by the class ``channel_config`` gives for its ``type``.

    Raises ConfigError listing every problem found (file, key path, expectation); whatever else ``channel_config``
    raises (ChannelError for a plugin that cannot be loaded) goes through unchanged.
    """
    file = Path(file)
    raw = read_yaml(file)
    if not isinstance(raw, dict):
        raise ConfigError(file, [("", "a mapping of sections (practice, sources, channels)")])
    # Absolute once, here: a worker, a test or staff in another folder resolve every path the same way.
    base_dir = file.resolve().parent
    if is_practice_file(file):
        if not SLUG.match(file.stem):
            raise ConfigError(file, [("", "a file name of lower-case letters, digits and dashes (the slug)")])
        base_dir = base_dir.parent
        _practice_defaults(raw, file.stem)
    problems: list[tuple[str, str]] = []
    channel_sections = raw.get("channels")
    validated_channels: dict[str, ChannelSettings] = {}
    if isinstance(channel_sections, dict):
        for name, section in channel_sections.items():
            if not isinstance(section, dict):
                problems.append((f"channels.{name}", "a mapping with at least 'type'"))
                continue
            kind = section.get("type")
            try:
                config_class = channel_config(str(kind))
            except ConfigError as exc:
                problems.append((f"channels.{name}.type", str(exc.problems[0][1])))
                continue
            try:
                validated_channels[name] = config_class.model_validate(section)
            except ValidationError as exc:
                problems.extend(_problems(exc, ("channels", name)))
    try:
        settings = Settings.model_validate({**raw, "channels": {}, "base_dir": base_dir, "file": file})
    except ValidationError as exc:
        problems.extend(_problems(exc))
        settings = None
    if problems or settings is None:
        raise ConfigError(file, problems)
    if not validated_channels:
        raise ConfigError(file, [("channels", "at least one channel")])
    settings = settings.model_copy(update={"channels": validated_channels})
    _check_references(settings)
    return settings


def _practice_defaults(raw: dict[str, Any], slug: str) -> None:
    """What one practice among many must not share with the others unless its file says so: its outbox, audience,
    templates (falling back to the shared ones) and SQLite ledger live under its slug."""
    raw.setdefault("outbox", f"../.carecast/outbox/{slug}")
    raw.setdefault("audience", f"{PRACTICES_DIR}/{slug}/audience")
    raw.setdefault("templates", f"{PRACTICES_DIR}/{slug}/templates")
    ledger = raw.setdefault("ledger", {})
    if isinstance(ledger, dict):
        ledger.setdefault("url", f"sqlite:///.carecast/ledger-{slug}.db")


def _check_references(settings: Settings) -> None:
    problems = []
    for name, channel in settings.channels.items():
        for wanted in channel.sources or ():
            if wanted not in settings.sources:
                known = ", ".join(sorted(settings.sources))
                problems.append((f"channels.{name}.sources", f"unknown source {wanted!r} (known: {known})"))
    for name, source in settings.sources.items():
        if isinstance(source, ObservanceSource) and not settings.path(source.file).is_file():
            problems.append((f"sources.{name}.file", f"no such file: {settings.path(source.file)}"))
        if isinstance(source, MarkdownSource) and not settings.path(source.path).is_dir():
            problems.append((f"sources.{name}.path", f"no such folder: {settings.path(source.path)}"))
    addressed = [
        (name, channel.type, channel.audience, channel.segment)
        for name, channel in settings.channels.items()
        if channel.audience is not None
    ]
    problems += [
        (f"channels.{name}.segment", "goes with an audience")
        for name, channel in settings.channels.items()
        if channel.segment is not None and channel.audience is None
    ]
    problems += check_audiences(settings.audiences, addressed, settings.base_dir)
    if problems:
        raise ConfigError(settings.file, problems)


def today_in(settings: Settings) -> date:
    """The practice's local date now: the edge where UTC meets the practice's calendar."""
    from carecast.model import now_utc

    return now_utc().astimezone(settings.practice.zone).date()
