"""The LinkedIn channel (an Organization page): one post per item, for referring physicians and partners.

``compose`` renders ``templates/linkedin/post.txt.j2`` (title, summary, the practice's hashtags when they fit) as
plain text, the way staff read and edit it. LinkedIn reads a post's ``commentary`` as "little text", where
``\\ | { } @ [ ] ( ) < > # * _ ~`` are markup and an unescaped one cuts the post: :func:`little_text` writes each
hashtag as ``{hashtag|\\#|tag}`` and escapes every other reserved character with a backslash, and the 3,000
character limit is counted on that escaped form. The item's tagged link becomes an article card
(``content.article``: source, the item's title as card title, the item's image as thumbnail); an item with an image
and no link is an image post (``content.media``).

With ``credentials`` (a member access token of an administrator of the page) ``publish`` calls the Posts API,
``POST /rest/posts`` with the versioned ``LinkedIn-Version`` header; an image is first fetched
(:func:`carecast.images.fetch_image`: public addresses only unless ``image_allow_private`` allows them, size and time
limits, a real photo) and uploaded through the Images API (``POST /rest/images?action=initializeUpload``, then a
``PUT`` of its bytes to the upload URL LinkedIn returns), its URN saved in the ledger's progress so a retry does not
upload it again. An image that
cannot be had is left off and the receipt says so. Failures: 401 is a token LinkedIn no longer accepts (they live
60 days): :class:`~carecast.errors.CredentialError` naming the channel's credential. 429 is transient until
``Retry-After``, else until midnight UTC, when LinkedIn's daily quotas reset. 5xx and a request that got no answer
are transient; any other refusal is permanent. LinkedIn has no idempotency key: the post is claimed before it is
sent, and one whose answer was lost (or whose run died with it in flight) is looked up among the page's newest posts
(``GET /rest/posts?q=author``, by its commentary) before it is sent again. Without credentials the request goes to
the outbox.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import quote

import requests
from pydantic import AwareDatetime, Field, HttpUrl, IPvAnyNetwork, StrictBool, field_validator

from carecast.plugin import (
    ChannelSettings,
    ContentItem,
    CredentialError,
    Draft,
    Engagement,
    ImageError,
    PublishContext,
    PublishError,
    Receipt,
    SecretRef,
    Strict,
    as_numbers,
    claim_time,
    made_since,
    now_utc,
    refusal,
    send_once,
    unreachable,
)
from carecast.plugin.media import fetch_image
from carecast.plugin.text import HASHTAG
from carecast_channels.http import https_or_loopback, nothing_sent, retry_after
from carecast_channels.social import SocialChannel, bearer_session, token_expiry_words

LINKEDIN_API = "https://api.linkedin.com"
#: The Posts API version (YYYYMM) sent as ``LinkedIn-Version``; LinkedIn supports each for a year.
LINKEDIN_VERSION = "202610"
#: How many of the page's newest posts are read to find one an earlier try made.
LOOKUP_POSTS = 20
MAX_COMMENTARY = 3_000
RESERVED = re.compile(r"([\\|{}@\[\]()<>#*_~])")
#: Roles on the page that may post as it.
POSTING_ROLES = frozenset({"ADMINISTRATOR", "CONTENT_ADMINISTRATOR", "DIRECT_SPONSORED_CONTENT_POSTER"})
#: Where the outbox puts the image's URN, which LinkedIn gives when the image is uploaded.
IMAGE_URN = "{image}"


def little_text(text: str) -> str:
    """``text`` as LinkedIn's little text format reads it as plain text: each hashtag ``{hashtag|\\#|tag}``, every
    other reserved character escaped with a backslash."""
    pieces, position = [], 0
    for match in HASHTAG.finditer(text):
        pieces += [_escape(text[position : match.start()]), "{hashtag|\\#|" + _escape(match.group(1)) + "}"]
        position = match.end()
    return "".join([*pieces, _escape(text[position:])])


def _escape(text: str) -> str:
    return RESERVED.sub(r"\\\1", text)


class LinkedInCredentials(Strict):
    """A member access token with ``w_organization_social`` (and ``r_organization_admin`` for ``check --live``)."""

    access_token: SecretRef


class LinkedInConfig(ChannelSettings):
    """``channels.<name>`` of type ``linkedin``."""

    organization_id: str = Field(pattern=r"^\d+$", description="the page's id: linkedin.com/company/<id>/admin")
    hashtags: bool = Field(True, description="append the practice's hashtags when they fit")
    credentials: LinkedInCredentials | None = Field(None, description="post with these; absent: write to the outbox")
    token_expires_at: Annotated[AwareDatetime | date, Field(union_mode="left_to_right")] | None = Field(
        None, description="when the access token expires (60 days after it was made); check --live warns 7 days before"
    )
    image_allow_private: StrictBool | list[IPvAnyNetwork] = Field(
        False,
        description="may fetch an item's image from private, loopback and link-local addresses: all (true) or these "
        "networks (a local test server, an intranet CDN); by default such addresses are refused",
    )
    api_version: str = Field(LINKEDIN_VERSION, pattern=r"^\d{6}$", description="the LinkedIn-Version header (YYYYMM)")
    timeout: float = Field(30, gt=0, le=300, description="seconds one request to LinkedIn (or the image) may take")
    api_base: HttpUrl = Field(
        HttpUrl(LINKEDIN_API), description="LinkedIn's API, or another base: a gateway, or a local test server"
    )

    @field_validator("api_base")
    @classmethod
    def _secure(cls, value: HttpUrl) -> HttpUrl:
        # The token travels in every request: never in clear text, except to a local test server.
        return https_or_loopback(value)

    @property
    def author(self) -> str:
        return f"urn:li:organization:{self.organization_id}"

    def token_expiry(self) -> datetime | None:
        """``token_expires_at`` as a UTC moment (a date alone: its start, UTC)."""
        expires = self.token_expires_at
        if expires is None or isinstance(expires, datetime):
            return expires
        return datetime.combine(expires, time(), UTC)


class LinkedInChannel(SocialChannel):
    """Posts on a LinkedIn Organization page: one item a post (an article card for its link)."""

    name = "linkedin"
    Config = LinkedInConfig
    utm_source = "linkedin"
    utm_medium = "social"
    limits: ClassVar[dict[str, int]] = {"max_characters": MAX_COMMENTARY}
    provider = "LinkedIn"
    #: LinkedIn counts calls per member and per app each UTC day and does not publish its numbers (learn.microsoft
    #: .com/linkedin/shared/api-guide/concepts/rate-limits: the app's are on the Developer Portal's Analytics tab);
    #: 150 posts a day per member is the figure commonly quoted for sharing. Posts are counted (``paces_requests``).
    rate: ClassVar[tuple[int, float] | None] = (150, 86400.0)
    paces_requests: ClassVar[bool] = False

    config: LinkedInConfig

    def count_characters(self, text: str) -> int:
        """Characters of the commentary as sent: escaped as little text (:func:`little_text`)."""
        return len(little_text(text))

    def compose(self, items: Sequence[ContentItem]) -> Draft:
        """Render one item as a post, its summary shortened on a word boundary when it is over 3,000 characters.

        Raises RenderError when ``items`` is not exactly one item, or when not even one word of the summary fits.
        """
        item = self.one_item(items)
        text, measures = self.fitted(item, "post.txt.j2")
        return Draft(
            channel=self.instance,
            item_ids=(item.id,),
            parts=(text,),
            measures=measures,
            details={"title": item.title},
            link=self.link(item),
            image_url=item.image_url,
            image_alt=item.image_alt,
        )

    def post_request(self, draft: Draft, image: str | None) -> dict[str, Any]:
        """The body of ``POST /rest/posts`` for ``draft``, with ``image`` (an image URN) as thumbnail or media."""
        body: dict[str, Any] = {
            "author": self.config.author,
            "commentary": little_text(draft.text),
            "visibility": "PUBLIC",
            "distribution": {
                "feedDistribution": "MAIN_FEED",
                "targetEntities": [],
                "thirdPartyDistributionChannels": [],
            },
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": False,
        }
        if draft.link:
            thumbnail = {"thumbnail": image} if image else {}
            body["content"] = {
                "article": {"source": draft.link, "title": draft.details.get("title") or draft.link, **thumbnail}
            }
        elif image:
            alt = {"altText": draft.image_alt} if draft.image_alt else {}
            body["content"] = {"media": {"id": image, **alt}}
        return body

    def headers(self) -> dict[str, str]:
        """The headers of every Posts and Images API call but the token."""
        return {"LinkedIn-Version": self.config.api_version, "X-Restli-Protocol-Version": "2.0.0"}

    def publish(self, draft: Draft, context: PublishContext) -> Receipt:
        """Post ``draft`` on the page when credentials are configured, else write its request to the outbox.

        Raises CredentialError when the token cannot be read (nothing was sent) or LinkedIn refuses it (401).
        Raises PublishError: transient for 429 (until ``Retry-After`` or midnight UTC), 5xx, a request that got no
        answer (a post is claimed first and looked up among the page's posts before it is sent again:
        :func:`carecast.inflight.send_once`) or a full or read-only outbox; permanent for any other refusal and
        when the outbox file exists already.
        """
        if self.config.credentials is None:
            return self._write_outbox(draft, context)
        session = self._session()
        progress = context.ledger.progress(context.publication_id)
        image, notes = progress.get("image"), list(progress.get("notes", []))
        if draft.image_url and image is None and not notes:
            image, notes = self._upload(session, draft.image_url)
            context.ledger.save_progress(context.publication_id, {"image": image, "notes": notes})
        body = self.post_request(draft, image)

        def receipt(urn: str) -> Receipt:
            where = f"https://www.linkedin.com/feed/update/{urn}/"
            return Receipt(location=where, sent_at=now_utc(), provider_ids=(urn,), notes=tuple(notes))

        def send() -> Receipt:
            response = self._send(session, "POST", "/rest/posts", lost="never", json=body)
            urn = response.headers.get("x-restli-id", "")
            if not urn:
                reason = "POST /rest/posts: LinkedIn answered without the post's id; it is looked up, not posted again"
                raise PublishError(self.instance, reason, transient=True, maybe_sent=True)
            return receipt(urn)

        def lookup() -> Receipt | None:
            claimed = claim_time(context)
            # The page's newest posts: one with this commentary, made since the claim, is the post an earlier try
            # made.
            query = {"q": "author", "author": self.config.author, "count": str(LOOKUP_POSTS)}
            found = _json(self._send(session, "GET", "/rest/posts", lost="retry", params=query)) or {}
            elements = found.get("elements")
            for post in elements if isinstance(elements, list) else []:
                if not isinstance(post, dict) or post.get("commentary") != body["commentary"] or not post.get("id"):
                    continue
                if made_since(_created(post.get("createdAt")), claimed, self.lookup_skew):
                    return receipt(str(post["id"]))
            return None

        return send_once(self.instance, context, send, lookup)

    def verify(self) -> str:
        """Check that the token's member may post as the page (``GET /rest/organizationAcls``), posting nothing, and
        warn when the token expires within 7 days (``token_expires_at``).

        Raises CredentialError when the token cannot be read, LinkedIn refuses it, its member has no posting role on
        the page, or it expired; PublishError when LinkedIn cannot be reached or fails.
        """
        if self.config.credentials is None:
            return super().verify()
        where = f"channels.{self.instance}.credentials.access_token"
        expires = self.config.token_expiry()
        if expires is not None and expires <= now_utc():
            raise CredentialError(where, f"the token expired on {expires:%Y-%m-%d} (token_expires_at); renew it")
        session = self._session()
        response = self._send(
            session, "GET", "/rest/organizationAcls", lost="retry", params={"q": "roleAssignee", "state": "APPROVED"}
        )
        elements = (_json(response) or {}).get("elements") or []
        roles = {str(e.get("role")) for e in elements if e.get("organization") == self.config.author}
        if not roles & POSTING_ROLES:
            raise CredentialError(where, f"its member has no role on {self.config.author} that may post as it")
        if expires is None:
            when = "token expiry unknown: set token_expires_at (LinkedIn tokens live 60 days)"
        else:
            when = token_expiry_words(expires)
        return f"LinkedIn: may post as {self.config.author} ({', '.join(sorted(roles & POSTING_ROLES))}); {when}"

    def engagement(self, provider_ids: Sequence[str]) -> dict[str, Engagement]:
        """Each post's lifetime ``totalShareStatistics`` (``GET /rest/organizationalEntityShareStatistics``, the
        page's shares as a Rest.li 2.0 ``List(...)``); a token without ``r_organization_social`` (403) is a problem
        of every answer. Raises CredentialError for a 401, PublishError when LinkedIn cannot be asked."""
        if self.config.credentials is None:
            return {}
        shares = ",".join(quote(urn, safe="") for urn in provider_ids)
        path = "/rest/organizationalEntityShareStatistics"
        query = (
            f"q=organizationalEntity&organizationalEntity={quote(self.config.author, safe='')}&shares=List({shares})"
        )
        url = f"{str(self.config.api_base).rstrip('/')}{path}?{query}"
        try:
            response = self._send(self._session(), "GET", path, lost="retry", url=url)
        except PublishError as exc:
            if exc.transient or "403" not in exc.reason:
                raise
            why = f"permission missing: the token needs r_organization_social ({exc.reason})"
            return {urn: Engagement({}, {"share_statistics": why}) for urn in provider_ids}
        answers = {}
        for element in (_json(response) or {}).get("elements") or []:
            subject = str(element.get("share") or element.get("ugcPost"))
            answers[subject] = Engagement(as_numbers(element.get("totalShareStatistics") or {}))
        return answers

    # -- live transport ------------------------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        """A session with the token and the versioned headers; raises CredentialError when it cannot be read."""
        credentials = self.config.credentials
        assert credentials is not None  # callers check: no credentials means the outbox
        return bearer_session(credentials.access_token, self.headers())

    def _send(
        self,
        session: requests.Session,
        method: str,
        path: str,
        *,
        lost: Literal["retry", "never"],
        url: str | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """One call to LinkedIn (``url``, else ``api_base`` + ``path``); the response when it is a success.

        Raises CredentialError for a 401; PublishError as ``publish`` says, a lost answer transient only when
        ``lost`` is ``"retry"``.
        """
        step = f"{method} {path}"
        target = url or str(self.config.api_base).rstrip("/") + path
        try:
            response = session.request(method, target, timeout=self.config.timeout, **kwargs)
        except requests.RequestException as exc:
            # A post's lost answer may follow the post going up: send_once looks for it before posting again.
            maybe = lost == "never" and not nothing_sent(exc)
            reason = f"{step}: LinkedIn answered nothing ({type(exc).__name__})"
            raise unreachable(self.instance, reason, maybe_sent=maybe) from exc
        if response.ok:
            return response
        status = response.status_code
        said = f"{status} {(_json(response) or {}).get('message') or response.reason}".rstrip()
        if status == 401:
            where = f"channels.{self.instance}.credentials.access_token"
            raise CredentialError(where, f"LinkedIn no longer accepts the token ({said}); renew it")
        if status == 429:
            wait = retry_after(response.headers)
            reason = f"{step}: LinkedIn rate limit reached ({said})"
            raise PublishError(
                self.instance, reason, transient=True, retry_after=_until_midnight() if wait is None else wait
            )
        failure = refusal(self.instance, f"{step}: LinkedIn refused it ({said})", status)
        assert isinstance(failure, PublishError)  # a 401 was answered above, naming the token
        raise failure

    def _upload(self, session: requests.Session, image_url: str) -> tuple[str | None, list[str]]:
        """Download the image and upload it to LinkedIn; its URN, or None and a note saying why it was left off.

        Raises PublishError (transient) when LinkedIn fails transiently, CredentialError for a 401.
        """
        try:
            image = fetch_image(image_url, timeout=self.config.timeout, allow_private=self.config.image_allow_private)
        except ImageError as exc:
            return None, [f"image not attached: {exc}"]
        try:
            started = self._send(
                session,
                "POST",
                "/rest/images?action=initializeUpload",
                lost="retry",
                json={"initializeUploadRequest": {"owner": self.config.author}},
            )
            value = (_json(started) or {}).get("value") or {}
            upload_url, urn = str(value.get("uploadUrl", "")), str(value.get("image", ""))
            https_or_loopback(HttpUrl(upload_url))  # the token goes along: never in clear text
            self._send(session, "PUT", "image upload", lost="retry", url=upload_url, data=image.content)
        except (PublishError, ValueError) as exc:
            if isinstance(exc, PublishError) and exc.transient:
                raise
            return None, [f"image not attached: LinkedIn refused it ({exc})"]
        return urn, []

    # -- outbox --------------------------------------------------------------------------------------------------

    def _write_outbox(self, draft: Draft, context: PublishContext) -> Receipt:
        """Write the ``POST /rest/posts`` request (and the image upload before it) to the outbox.

        Raises PublishError when the outbox refuses the file.
        """
        base = str(self.config.api_base).rstrip("/")
        payload: dict[str, Any] = {"account": self.config.account}
        if draft.image_url:
            payload["image_upload"] = {
                "endpoint": "POST /rest/images?action=initializeUpload",
                "url": f"{base}/rest/images?action=initializeUpload",
                "headers": self.headers(),
                "request": {"initializeUploadRequest": {"owner": self.config.author}},
                "then": f"PUT the bytes of {draft.image_url} to the uploadUrl it answers",
            }
        payload.update(
            endpoint="POST /rest/posts",
            url=f"{base}/rest/posts",
            headers=self.headers(),
            request=self.post_request(draft, IMAGE_URN if draft.image_url else None),
        )
        return context.outbox.receipt(context.outbox.write_json(self.instance, context.key, payload))


def _created(value: object) -> datetime | None:
    """A post's ``createdAt`` (epoch milliseconds), None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _json(response: requests.Response) -> dict[str, Any] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _until_midnight() -> float:
    """Seconds until the next midnight UTC, when LinkedIn's daily quotas reset."""
    now = now_utc()
    return (datetime.combine(now.date() + timedelta(days=1), time(), UTC) - now).total_seconds()
