"""The one reading of a failure every channel shares: transient unless provably permanent.

:func:`refusal` reads a provider's HTTP refusal, :func:`unreachable` a request that got no answer. Channels reach
them through :mod:`carecast.channel`, which exports them with the rest of the channel contract.
"""

from __future__ import annotations

from carecast.errors import CredentialError, PublishError

#: How an outcome's reason starts when a person must mend a credential before the publication can go (it is
#: retried once they have): the flow notifies it, though the run itself did not fail.
CREDENTIAL_TO_FIX = "a credential to fix"

#: HTTP statuses saying the provider did nothing with the request and may take it later: a timeout, "too early",
#: a rate limit. With every 5xx these are transient, whatever the provider's own code says or leaves out.
TRANSIENT_STATUSES = frozenset({408, 425, 429})


def refusal(
    channel: str,
    reason: str,
    status: int,
    *,
    credential: str | None = None,
    retry_after: float | None = None,
) -> PublishError | CredentialError:
    """How every channel reads a provider's refusal of a request (HTTP ``status``; ``reason`` says what was tried
    and what the provider said, never a secret).

    Failures are transient unless provably permanent: 429, 408, 425 and every 5xx are transient (``retry_after``:
    the wait the provider asked for), with or without a provider error code. A 401 is a credential the provider no
    longer accepts (revoked, rotated, mistyped): a CredentialError naming ``credential`` (the config key), so the
    run says what to fix and the publication is retried once it is fixed. Any other 4xx is permanent: the request
    itself is refused, and sending it again would be refused again. A channel checks the codes it knows to mean
    otherwise (a rate limit answered 400, a token error answered 403) before calling this.
    """
    if status == 401 and credential is not None:
        return CredentialError(
            credential, f"{reason}: the provider refuses this credential; fix it, and the next run sends it"
        )
    transient = status in TRANSIENT_STATUSES or status >= 500
    return PublishError(channel, reason, transient=transient, retry_after=retry_after if transient else None)


def unreachable(channel: str, reason: str, *, maybe_sent: bool) -> PublishError:
    """How every channel reads a request that got no answer (refused connection, timeout, dropped connection):
    transient. ``maybe_sent`` when the request may have reached the provider (anything but a connection never
    made): the publication's claim then makes the next attempt ask the provider, or a person, before sending it
    again (:func:`carecast.inflight.send_once`)."""
    return PublishError(channel, reason, transient=True, maybe_sent=maybe_sent)
