"""What the atproto client's errors mean for a Bluesky publication: a credential to fix, a wait, or a refusal."""

from __future__ import annotations

from atproto_client.exceptions import (
    NetworkError,
    RateLimitExceededError,
    RequestErrorBase,
    UnauthorizedError,
)
from atproto_client.models.common import XrpcError
from atproto_core.exceptions import AtProtocolError

from carecast.plugin import CredentialError, PublishError, now_utc

#: XRPC errors that mean the session's token is no good: a person must sign in again (a new app password).
TOKEN_ERRORS = frozenset({"ExpiredToken", "InvalidToken", "AuthenticationRequired", "AccountTakedown"})


def failure(instance: str, where: str, exc: AtProtocolError, step: str, context: str) -> CredentialError | PublishError:
    """What an atproto error at ``step`` means for channel ``instance``'s publication; ``context`` ends the reason,
    and a refused session is a CredentialError naming ``where``."""
    error = xrpc_error(exc)
    status = exc.response.status_code if isinstance(exc, RequestErrorBase) and exc.response else None
    if error in TOKEN_ERRORS or isinstance(exc, UnauthorizedError):
        return CredentialError(where, f"Bluesky refused the session at {step} ({error or status})")
    if isinstance(exc, RateLimitExceededError):
        wait = exc.retry_after
        if wait is None and exc.reset_at is not None:
            wait = max(0.0, (exc.reset_at - now_utc()).total_seconds())
        reason = f"{step}: Bluesky rate limit reached (429){context}"
        return PublishError(instance, reason, transient=True, retry_after=wait if wait is not None else 60.0)
    if isinstance(exc, NetworkError) and status is None:
        reason = f"{step}: Bluesky cannot be reached ({type(exc.__cause__ or exc).__name__}){context}"
        return PublishError(instance, reason, transient=True)
    if status is None:  # the client could not read the answer (a malformed session, say)
        return PublishError(instance, f"{step}: Bluesky's answer was unreadable ({type(exc).__name__})", transient=True)
    transient = status >= 500 or status == 409
    return PublishError(
        instance, f"{step}: Bluesky answered {status} {error or ''}{context}".strip(), transient=transient
    )


def xrpc_error(exc: AtProtocolError) -> str | None:
    """The XRPC error name an answer carried (``ExpiredToken``, ``RecordNotFound``), never its message."""
    response = exc.response if isinstance(exc, RequestErrorBase) else None
    content = response.content if response is not None else None
    return content.error if isinstance(content, XrpcError) else None
