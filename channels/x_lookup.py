"""Settling an X post whose outcome is not known by asking X, never by posting it again blindly.

A thread part is in doubt when its run died with it in flight (the resumed claim made it ``unknown``) or X's answer
to it was lost (:data:`carecast.inflight.LOST`). Before it is posted (again), the account's newest posts are read
(``GET /2/users/:id/tweets`` with ``created_at``) and compared with the part's text, links aside (X shows every
link as its own t.co address); only a post made since the part was claimed can be it, never an older one that says
the same. Found, the part is recorded with X's id and the thread goes on from it; not found, it is posted.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import regex
import requests
import tweepy

from carecast.plugin import LOST, DeliveryRecord, PublishContext, PublishError, made_since

#: How many of the account's newest posts are read (X's most per page is 100).
LOOKUP_POSTS = 20
_URL = regex.compile(r"https?://\S+")


def in_doubt(record: DeliveryRecord | None) -> bool:
    """Whether X must be asked before this part is posted (again)."""
    if record is None:
        return False
    return record.state == "unknown" or (record.state == "failed" and record.transient and record.error == LOST)


def find_post(client: tweepy.Client, text: str, claimed: datetime | None, skew: timedelta) -> str | None:
    """The id of the account's newest post that says ``text`` (links aside) and was made since ``claimed`` (less
    ``skew``: :func:`carecast.plugin.made_since`), None when there is none.

    Raises tweepy.TweepyException or requests.RequestException when X cannot be asked.
    """
    me = client.get_me(user_auth=True).data
    answer = client.get_users_tweets(me.id, max_results=LOOKUP_POSTS, tweet_fields=["created_at"], user_auth=True)
    wanted = _without_links(text)
    for tweet in answer.data or []:
        if _without_links(str(tweet.text)) == wanted and made_since(tweet.created_at, claimed, skew):
            return str(tweet.id)
    return None


def _without_links(text: str) -> str:
    return _URL.sub("<link>", text).strip()


def settle_part(
    instance: str, client: tweepy.Client, context: PublishContext, part: str, text: str, step: str, skew: timedelta
) -> str | None:
    """Ask X whether thread part ``part`` (in doubt) of the publication in ``context`` is up (a post made since the
    part was claimed, less ``skew``): its id, recorded sent; None, recorded claimable again (``step`` names the part,
    ``instance`` the channel, in messages).

    Raises PublishError (transient) when X cannot be asked: the part stays in doubt for the next try.
    """
    ledger, publication = context.ledger, context.publication_id
    settled = ledger.deliveries(publication)[part]
    try:
        found = find_post(client, text, settled.claimed_at, skew)
    except (tweepy.TweepyException, requests.RequestException) as exc:
        if settled.state == "unknown":
            ledger.finish_delivery(publication, part, "failed", error=LOST, transient=True)
        reason = f"{step}: its outcome is not known and X cannot be asked now ({type(exc).__name__}); asked next run"
        raise PublishError(instance, reason, transient=True) from exc
    if settled.state == "failed":
        ledger.claim_delivery(publication, part)
    if found is None:
        ledger.finish_delivery(publication, part, "failed", error="not on X: posted again", transient=True)
    else:
        ledger.finish_delivery(publication, part, "sent", provider_id=found)
    return found
