"""Hand-written posts: Markdown files with YAML front matter in ``config/content/``.

Front matter keys (unknown keys are errors)::

    title: Celebrating Maria's 10 years at Oakview       # required
    date: 2026-11-20                                     # a date, or a date and time; no zone: the practice's
    kind: recognition                                    # post (default) | recognition
    campaign: staff_anniversary                          # utm_campaign; optional
    url: /blog/maria-10-years                            # a path on the practice's site or a full URL; optional
    image: /images/maria.jpg                             # optional; then image_alt is required
    image_alt: Maria smiling in the gym
    tags: [StaffSpotlight]
    mentions_patient: true                               # HIPAA: names, shows or quotes a patient
    authorization:                                       # the patient's written authorization on file
      channels: [newsletter]                             # the only channels it may publish on
      signed: 2026-10-28
      expires: 2027-10-31                                # valid through this day (practice's zone)
      reference: AUTH-2026-0142                          # where the signed form is kept
      patient: James Carter                              # optional: whom it names, for the PHI check

The item id is ``md:<source>:<file stem>``: renaming a file makes a new item. A post dated after today (the
practice's local date) is held back until its day. The body is rendered to HTML, sanitised, and to plain text.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Literal

import frontmatter
import markdown
import yaml
from pydantic import BeforeValidator, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from carecast.config import MarkdownSource, Settings, expectation
from carecast.errors import SourceError
from carecast.html import absolute_http_url, html_to_text, sanitize_html
from carecast.model import ContentItem, content_hash
from carecast.sources.result import SourceResult
from carecast.strict import Strict


class Authorization(Strict):
    """A patient's written authorization (45 CFR 164.508), scoped to channels, with an expiry."""

    channels: list[str] = Field(min_length=1)
    signed: date
    expires: date
    reference: str = Field(min_length=1, description="where the signed form is kept")
    patient: str | None = Field(None, min_length=1, description="the patient's name, so the PHI check knows it")

    @model_validator(mode="after")
    def _signed_before_expiry(self) -> Authorization:
        if self.expires < self.signed:
            raise ValueError(f"expires ({self.expires}) must not be before signed ({self.signed})")
        return self


def _midnight_of_a_date(value: object) -> object:
    # YAML reads `2026-11-20` as a date: the post is of that day from its start.
    return datetime.combine(value, time()) if isinstance(value, date) and not isinstance(value, datetime) else value


class FrontMatter(Strict):
    title: str = Field(min_length=1)
    date: Annotated[datetime, BeforeValidator(_midnight_of_a_date)]
    kind: Literal["post", "recognition"] = "post"
    campaign: str | None = Field(None, pattern=r"^[a-z0-9_\-]+$")
    url: str | None = None
    image: str | None = None
    image_alt: str | None = None
    tags: list[str] = Field(default_factory=list)
    audiences: list[str] = Field(default_factory=list, description="who it is for: audience names or kinds, or all")
    mentions_patient: bool = False
    authorization: Authorization | None = None

    @model_validator(mode="after")
    def _image_has_alt(self) -> FrontMatter:
        if self.image and not self.image_alt:
            raise ValueError("image_alt is required with image (describe the picture for people who cannot see it)")
        return self


def read_markdown(name: str, config: MarkdownSource, settings: Settings, *, today: date) -> SourceResult:
    """The posts of the source's folder dated on or before ``today`` (the practice's local date).

    A file that cannot be read or whose front matter is invalid fails alone: it is listed in the result's
    ``failures`` with the key and the reason, and the other posts are read. Raises SourceError when the folder is
    missing.
    """
    folder = settings.path(config.path)
    if not folder.is_dir():
        raise SourceError(name, f"no such folder: {folder}")
    items: list[ContentItem] = []
    warnings: list[str] = []
    failures: list[str] = []
    for file in sorted(folder.glob("*.md")):
        try:
            item = _read_post(name, file, settings)
        except ValueError as exc:
            failures.append(f"{file.name}: {exc}")
            continue
        if item.published.astimezone(settings.practice.zone).date() > today:
            continue  # scheduled: it becomes an item on its day
        if item.mentions_patient and not item.authorized_channels:
            warnings.append(f"{file.name}: mentions a patient without an authorization on file; it publishes nowhere")
        items.append(item)
    return SourceResult(items=items, warnings=warnings, failures=failures)


def _read_post(source: str, file: Path, settings: Settings) -> ContentItem:
    """One post. Raises ValueError saying why when the file cannot be read or names the key when it is invalid."""
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot be read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"is not UTF-8 text (at byte offset {exc.start}); save it as UTF-8") from exc
    try:
        post = frontmatter.loads(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"front matter is not valid YAML: {exc}") from exc
    try:
        meta = FrontMatter.model_validate(post.metadata)
    except ValidationError as exc:
        raise ValueError("; ".join(_describe(error) for error in exc.errors())) from exc
    zone = settings.practice.zone
    website = str(settings.practice.website)
    url = _site_url(meta.url, website, "url")
    image = _site_url(meta.image, website, "image")
    published = meta.date if meta.date.tzinfo else meta.date.replace(tzinfo=zone)
    html = sanitize_html(markdown.markdown(post.content), base_url=url or website)
    authorization = meta.authorization
    return ContentItem(
        id=f"md:{source}:{file.stem}",
        source=source,
        kind=meta.kind,
        title=meta.title,
        url=url,
        summary_html=html,
        summary_text=html_to_text(html),
        published=published,
        content_hash=content_hash(text),
        image_url=image,
        image_alt=meta.image_alt,
        campaign=meta.campaign,
        tags=tuple(meta.tags),
        audiences=tuple(meta.audiences),
        mentions_patient=meta.mentions_patient,
        authorized_channels=tuple(authorization.channels) if authorization else (),
        # Valid through the expiry day in the practice's zone: it ends at the next local midnight.
        authorization_expires=(
            datetime.combine(authorization.expires + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)
            if authorization
            else None
        ),
        patient=authorization.patient if authorization else None,
    )


def _site_url(value: str | None, website: str, key: str) -> str | None:
    if value is None:
        return None
    url = absolute_http_url(value, website)
    if url is None:
        raise ValueError(f"{key}: a path on the practice's site (/...) or an http(s) URL, not {value!r}")
    return url


def _describe(error: ErrorDetails) -> str:
    # A check across keys (image with image_alt) has no location; its message names the keys.
    key = ".".join(str(part) for part in error["loc"])
    return f"{key}: {expectation(error)}" if key else expectation(error)
