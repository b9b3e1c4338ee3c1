"""The one exception tree of CareCast.

Every error CareCast raises on purpose derives from :class:`CareCastError`, carries the data a caller needs to
act on it, and chains its cause (``raise ... from exc``)::

    CareCastError
    ├── ConfigError            a config file is unreadable or invalid (file, key path, expectation)
    ├── CredentialError        a credential named in config cannot be read (where it was looked for; never a value)
    ├── TokenError             an unsubscribe token was never issued, or an old signed one is forged or expired
    ├── SourceError            a source could not be fetched or parsed (source name, reason)
    ├── FetchError             a URL was refused, or its fetch cut short by its deadline or size limit (reason)
    ├── LedgerError            the ledger refused or lost a write
    │   ├── AlreadyClaimed     an item was already claimed or published on that channel and account
    │   └── NotAtProvider      ``resolve --sent`` for recipients the provider has no record of (who, publication)
    ├── ChannelError           a channel plugin is missing or misbehaves (channel name)
    │   ├── RenderError        a draft breaks a channel rule (channel, item ids, reason); never published
    │   └── PublishError       a provider or the outbox refused a publication (transient, retry_after)
    ├── MeasureError           text cannot be measured for a channel (unknown channel, bad input)
    ├── StorageError           the disk holding the project's state is full, before or during a run (path, free)
    └── ImageError             an item's image cannot be fetched or is no photo to upload (url, reason)

Secrets never appear in a message: errors carry names of credentials, never their values.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class CareCastError(Exception):
    """Root of every error CareCast raises on purpose."""


class ConfigError(CareCastError):
    """A configuration file is unreadable or invalid.

    ``problems`` lists ``(key_path, expectation)`` pairs, so one run reports every mistake in the file at once.
    """

    def __init__(self, file: Path | str, problems: Sequence[tuple[str, str]]) -> None:
        self.file = Path(file)
        self.problems = list(problems)
        lines = [f"{self.file}: {key or '(top level)'}: {expectation}" for key, expectation in self.problems]
        super().__init__("\n".join(lines))


class CredentialError(CareCastError):
    """A credential the config names cannot be read; says where it was looked for, never a value."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")


class TokenError(CareCastError):
    """An unsubscribe token was never issued, or an old signed one is forged or expired: nothing is recorded."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"unsubscribe token: {reason}")


class SourceError(CareCastError):
    """A source could not be fetched or read; the other sources of the run go on."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"source {source!r}: {reason}")


class FetchError(CareCastError):
    """A fetch was refused (scheme, address, redirects) or cut short (deadline, size); ``reason`` says which.

    A feed's failed fetch becomes its source's SourceError.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class LedgerError(CareCastError):
    """The ledger could not record or read something."""


class AlreadyClaimed(LedgerError):
    """A publication of these items on this channel and account exists already: sending again is refused."""

    def __init__(self, channel: str, account: str, item_ids: Sequence[str]) -> None:
        self.channel = channel
        self.account = account
        self.item_ids = list(item_ids)
        super().__init__(f"{channel} ({account}): already claimed or published: {', '.join(self.item_ids)}")


class NotAtProvider(LedgerError):
    """Staff said a publication's unknown recipients have it (``resolve --sent``), but its provider has no record of
    these ``addresses``: nothing is settled. The message counts them and names none (it reaches logs)."""

    def __init__(self, publication_id: int, addresses: Sequence[str]) -> None:
        self.publication_id = publication_id
        self.addresses = list(addresses)
        super().__init__(
            f"publication {publication_id}: the provider has no record of it for {len(self.addresses)} "
            "recipient(s); not settled: --resend or --drop them"
        )


class ChannelError(CareCastError):
    """A channel plugin is missing, misconfigured or misbehaves."""

    def __init__(self, channel: str, reason: str) -> None:
        self.channel = channel
        self.reason = reason
        super().__init__(f"channel {channel!r}: {reason}")


class RenderError(ChannelError):
    """A draft breaks a channel rule; it is rejected with its reason at adapt time and never published."""

    def __init__(self, channel: str, reason: str, item_ids: Sequence[str] = ()) -> None:
        self.item_ids = list(item_ids)
        super().__init__(channel, reason)


class PublishError(ChannelError):
    """A publication could not be delivered.

    ``transient`` says whether trying again later may succeed (timeouts, 429, 5xx); ``retry_after`` is the
    number of seconds the provider asked us to wait, when it said. ``maybe_sent``: the request may have reached the
    provider and been acted on (its answer was lost), so it is not sent again before the provider is asked.
    """

    def __init__(
        self,
        channel: str,
        reason: str,
        *,
        transient: bool,
        retry_after: float | None = None,
        maybe_sent: bool = False,
    ) -> None:
        self.transient = transient
        self.retry_after = retry_after
        self.maybe_sent = maybe_sent
        super().__init__(channel, reason)


class MeasureError(CareCastError):
    """Text cannot be measured for the asked channel."""


class StorageError(CareCastError):
    """The disk holding ``path`` (Prefect's home, the ledger) has too little room for a run: it would end midway in
    a crash that names nothing (Prefect's server aborts). Says where, and what to do.

    With ``during``, the disk filled while the run was under way (the ledger could not write ``during``): the run
    stops there; what it claimed but could not record is taken up by a later run as a run that died is, its
    requests in flight asked about at the provider, never recorded as sent unless they were. ``free`` is None when
    not known (a database server's disk)."""

    def __init__(self, path: Path | str, free: int | None, during: str | None = None) -> None:
        self.path = path
        self.free = free
        room = "full" if free is None else f"full ({free // 2**20} MiB free)"
        if during is None:
            message = (
                f"{path}: the disk holding it is {room}: free space there, or move the state elsewhere "
                "(ledger.url, PREFECT_HOME), then run again; nothing was sent"
            )
        else:
            message = (
                f"{path}: the disk holding it is {room} (the ledger failed at {during}): free space there, or "
                "move the ledger elsewhere (ledger.url), then run again; what this run claimed but did not record "
                "is resumed once its claim goes stale (ledger.claim_timeout), nothing recorded as sent that was not"
            )
        super().__init__(message)


class ImageError(CareCastError):
    """An item's image could not be fetched for upload, or is no photo (too small, not an image, private address).

    A post goes out without its image; the reason is noted on the receipt.
    """

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"image {url}: {reason}")
