"""The document model of an item's body, and its two renderings: safe HTML for email, plain text for the rest.

An item's HTML is read once, at ingest (:mod:`carecast.reader`), into a :class:`Document`: a flat sequence of typed
blocks (headings, paragraphs, lists nested and numbered, tables, figures, embeds, quotes, buttons, footnotes) whose
URLs are absolute and whose pictures are real ones. It is stored with the item as JSON (:meth:`Document.to_json`),
so no channel parses HTML again. :func:`render_html` gives the HTML every email shows (tables stay tables, images
never wider than the column, an embed a thumbnail-with-play link); :func:`render_text` the plain text every other
channel starts from, with per-channel :class:`TextOptions`; :func:`excerpt_sentences` the text a short post may
quote (whole sentences of body paragraphs, never a heading, caption, citation or button label).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any, Literal

from carecast.words import words

Captions = Literal["drop", "parentheses"]


@dataclass(frozen=True)
class Span:
    """A run of text in a block: a link when ``href`` is set, bold or italic, or a footnote reference (``note``)."""

    text: str
    href: str | None = None
    style: Literal["", "strong", "em"] = ""
    note: bool = False


@dataclass(frozen=True)
class Picture:
    """A real picture (never a placeholder): absolute URL, alt text, the size the HTML declares."""

    url: str
    alt: str | None = None
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class Block:
    """One block of a document; ``kind`` says which fields mean something.

    heading (``level``, ``spans``, ``url``: where it links when it is a link, a teaser's title), paragraph
    (``spans``), list (``ordered``, ``start``, ``items``: each item a tuple of blocks, nested lists among them), table
    (``rows`` of cell texts, the first ``header_rows`` of them headings), figure (``picture``, ``caption``), embed
    (``url``, ``caption``, ``picture``: its thumbnail), quote (``items[0]``: its blocks), button (``url``,
    ``caption``: its label), footnotes (``items``: one per note).
    """

    kind: Literal["heading", "paragraph", "list", "table", "figure", "embed", "quote", "button", "footnotes"]
    spans: tuple[Span, ...] = ()
    level: int = 0
    ordered: bool = False
    start: int = 1
    items: tuple[tuple[Block, ...], ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    header_rows: int = 0
    picture: Picture | None = None
    caption: str = ""
    url: str | None = None

    @property
    def text(self) -> str:
        """The block's own words on one line (footnote references left out)."""
        return " ".join("".join(span.text for span in self.spans if not span.note).split())


@dataclass(frozen=True)
class Document:
    """An item's body as blocks, in reading order."""

    blocks: tuple[Block, ...] = ()

    def walk(self) -> Iterator[Block]:
        """Every block, nested ones (list items, quotes) after the block holding them."""
        yield from _walk(self.blocks)

    def pictures(self) -> list[Picture]:
        """The pictures the body shows (figures' and embeds' thumbnails), in order."""
        return [block.picture for block in self.walk() if block.picture is not None and block.kind == "figure"]

    def to_json(self) -> list[dict[str, Any]]:
        """A JSON form of the blocks, only the fields each block uses."""
        return [_block_json(block) for block in self.blocks]

    @classmethod
    def from_json(cls, data: Sequence[dict[str, Any]]) -> Document:
        """The document :meth:`to_json` wrote; raises KeyError or TypeError on anything else."""
        return cls(tuple(_block_from(value) for value in data))


def _walk(blocks: Sequence[Block]) -> Iterator[Block]:
    for block in blocks:
        yield block
        if block.kind in {"list", "quote"}:
            for item in block.items:
                yield from _walk(item)


_DEFAULTS = Block(kind="paragraph")


def _block_json(block: Block) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": block.kind}
    for name in ("level", "ordered", "start", "header_rows", "caption", "url"):
        value = getattr(block, name)
        if value != getattr(_DEFAULTS, name):
            data[name] = value
    if block.spans:
        data["spans"] = [
            {key: value for key, value in vars(span).items() if value or key == "text"} for span in block.spans
        ]
    if block.items:
        data["items"] = [[_block_json(child) for child in item] for item in block.items]
    if block.rows:
        data["rows"] = [list(row) for row in block.rows]
    if block.picture is not None:
        data["picture"] = {key: value for key, value in vars(block.picture).items() if value is not None}
    return data


def _block_from(data: dict[str, Any]) -> Block:
    values = {key: value for key, value in data.items() if key not in {"spans", "items", "rows", "picture"}}
    return Block(
        **values,
        spans=tuple(Span(**span) for span in data.get("spans", ())),
        items=tuple(tuple(_block_from(child) for child in item) for item in data.get("items", ())),
        rows=tuple(tuple(row) for row in data.get("rows", ())),
        picture=Picture(**data["picture"]) if "picture" in data else None,
    )


# -- plain text ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextOptions:
    """How a channel wants the plain text: ``bullet`` before unordered items, captions dropped or in parentheses,
    footnotes and embeds' links kept or not, buttons as "label: url" or the label only."""

    bullet: str = "*"
    captions: Captions = "drop"
    footnotes: bool = False
    links: bool = True
    headings: bool = True
    skip: frozenset[str] = field(default_factory=frozenset)


def render_text(document: Document, options: TextOptions = TextOptions()) -> str:
    """The document as plain text: blocks separated by a blank line, list items one a line (``* item``,
    ``1. item``, nested ones indented), a table one readable line per row ("Wall slide: 3 sets, 10-12 reps, rest
    45 s"). Raises nothing."""
    lines = _text_blocks(document.blocks, options, depth=0)
    return "\n\n".join(chunk for chunk in lines if chunk)


def _text_blocks(blocks: Sequence[Block], options: TextOptions, depth: int) -> list[str]:
    return [_text_block(block, options, depth) for block in blocks if block.kind not in options.skip]


def _text_block(block: Block, options: TextOptions, depth: int) -> str:
    indent = "  " * depth
    if block.kind in {"heading", "paragraph"}:
        if block.kind == "heading" and not options.headings:
            return ""
        return block.text if block.kind == "heading" else _paragraph_text(block)
    if block.kind == "list":
        lines = []
        for number, item in enumerate(block.items, start=block.start):
            marker = f"{number}." if block.ordered else options.bullet
            first, *rest = _text_blocks(item, options, depth + 1) or [""]
            lines.append(f"{indent}{marker} {first.strip()}")
            lines.extend(chunk for chunk in rest if chunk)
        return "\n".join(lines)
    if block.kind == "table":
        return "\n".join(table_lines(block))
    if block.kind in {"figure", "embed"}:
        caption = block.caption or (block.picture.alt if block.kind == "embed" and block.picture else "") or ""
        link = block.url if block.kind == "embed" and options.links else None
        if options.captions == "drop" or not caption:
            return link or ""
        return f"({caption})" + (f" {link}" if link else "")
    if block.kind == "quote":
        inner = _text_blocks(block.items[0] if block.items else (), options, depth)
        return "\n\n".join(chunk for chunk in inner if chunk)
    if block.kind == "button":
        return f"{block.caption}: {block.url}" if options.links and block.url else ""
    if block.kind == "footnotes" and options.footnotes:
        return "\n".join(f"[{number}] {note[0].text}" for number, note in enumerate(block.items, start=1) if note)
    return ""


def _paragraph_text(block: Block) -> str:
    # A line break inside a paragraph (an address, a poem) stays one; other whitespace collapses.
    text = "".join(span.text for span in block.spans if not span.note)
    return "\n".join(" ".join(line.split()) for line in text.split("\n") if line.strip())


_MEASURE = re.compile(r"^[\d.,/\u2013\u2014\-\sx\u00d7]+$")


def table_lines(block: Block) -> list[str]:
    """Each body row of a table as one readable line: the first cell, a colon, then each other cell with its
    column's heading ("3 sets" for a number, "rest 45 s" for a value with its own unit). A heading row of one cell
    over wider rows is the table's title, its first line."""
    heads = block.rows[0] if block.header_rows else ()
    lines = []
    if len(heads) == 1 and any(len(row) > 1 for row in block.rows[1:]):
        lines, heads = [heads[0]], ()
    for row in block.rows[block.header_rows :]:
        cells = [cell for cell in row]
        if not any(cells):
            continue
        parts = []
        for column, cell in enumerate(cells[1:], start=1):
            head = heads[column] if column < len(heads) else ""
            if not cell:
                continue
            if not head:
                parts.append(cell)
            elif _MEASURE.match(cell):
                parts.append(f"{cell} {head.lower() if head[1:].islower() or len(head) == 1 else head}")
            else:
                parts.append(f"{head.lower() if head[1:].islower() else head} {cell}")
        lines.append(f"{cells[0]}: {', '.join(parts)}" if parts and cells[0] else cells[0] or ", ".join(parts))
    return lines


def excerpt_sentences(document: Document) -> str:
    """The body's opening paragraphs, one a line, up to its first heading, list, table or quote: what a short post
    may quote. Never a heading, list label, caption, citation, button label or footnote, and never a paragraph
    after a heading it depends on ("What doesn't help: knee straps"), so the excerpt keeps the author's meaning."""
    paragraphs: list[str] = []
    for block in document.blocks:
        if block.kind in {"heading", "list", "table", "quote"} and paragraphs:
            break
        if block.kind == "paragraph" and _is_prose(block):
            paragraphs.append(_paragraph_text(block).replace("\n", " "))
    return "\n".join(paragraphs)


_CITATION = re.compile(r"\b(19|20)\d\d\s*;\s*\d+|\bdoi:|\bet al\.|\bPMID\b", re.IGNORECASE)


def _is_prose(block: Block) -> bool:
    """A paragraph of sentences: not a citation, not only a link (a call to a page), not a label."""
    text = block.text
    if not text or _CITATION.search(text):
        return False
    linked = sum(len(span.text.strip()) for span in block.spans if span.href)
    return linked < 0.8 * len(text)


# -- HTML ----------------------------------------------------------------------------------------------------------

#: Inline style of the things a mail client shows without the template's CSS (Gmail keeps inline styles only).
TABLE_STYLE = "border-collapse: collapse; width: 100%; margin: 0 0 12px 0;"
#: Around every table: a table of many columns of numbers (kept on one line) can be wider than a phone; it then
#: scrolls sideways in its own box, as a web page's wide table does, and the email around it does not. The box's
#: zero width keeps the table's width out of the column's (an automatic table layout would widen the column to it);
#: its min-width gives the box the column's width back.
TABLE_BOX_STYLE = "overflow-x: auto; width: 0; min-width: 100%;"
#: A cell breaks its lines between words only: the newsletter's column breaks inside words (MJML's ``word-break:
#: break-word``), which let the browser size a column to a letter and showed a phone "LOW" as "LO" over "W". A table
#: its words make wider than the column scrolls in its box.
CELL_STYLE = (
    "border: 1px solid #d5dde1; padding: 6px 8px; text-align: left; vertical-align: top;"
    " word-break: normal; overflow-wrap: normal;"
)
#: A cell that is a number, or one with a unit of one or two letters ("5040", "10\u201312", "45 s"): kept on one line,
#: since the newsletter's column breaks long words (MJML's ``word-break: break-word``) and a phone showed 5040 as
#: "50" over "40". Words ("Top 10", names) still wrap, so a table of many columns still fits.
_NUMBER_CELL = re.compile(r"(?=.*\d)(?!.*[^\W\d_]{3}).{1,12}")
BUTTON_STYLE = (
    "display: inline-block; padding: 10px 18px; border-radius: 4px; background-color: #0b6e99; color: #ffffff;"
    " font-weight: bold; text-decoration: none;"
)
LINK_REL = "noopener noreferrer nofollow"
IMAGE_STYLE = "display: block; max-width: 100%; height: auto; border: 0;"


def render_html(document: Document, language: str | None = None) -> str:
    """The document as safe, simple HTML for email and templates: every text escaped, every URL one the reader
    vetted (absolute http(s), or a contact link), images with no width attribute so nothing is wider than the
    column when images are off; the words it adds (a video's label) in ``language``. Raises nothing."""
    said = words(language)
    return "".join(_html_block(block, said) for block in document.blocks)


def _html_spans(spans: Sequence[Span]) -> str:
    out = []
    for span in spans:
        if span.note:
            out.append(f"<sup>{_html_text(span.text)}</sup>")
            continue
        # The spaces around a link's or a style's words stay outside it: an underline that starts with a space
        # ("Want to see how it works?_Learn more here") looks like a slip.
        words = span.text.strip()
        before, after = span.text[: len(span.text) - len(span.text.lstrip())], span.text[len(span.text.rstrip()) :]
        text = _html_text(words)
        if span.style and words:
            text = f"<{span.style}>{text}</{span.style}>"
        if span.href and words:
            text = f'<a href="{escape(span.href)}" rel="{LINK_REL}">{text}</a>'
        out.append(_html_text(before) + text + _html_text(after))
    return "".join(out).strip()


def _html_text(text: str) -> str:
    return escape(text).replace("\n", "<br>")


def _html_picture(picture: Picture, alt: str | None = None) -> str:
    # The declared width for Outlook, which reads no CSS (the newsletter caps it at its column); max-width for
    # every other client, images on or off, so no picture is wider than the phone.
    width = f' width="{picture.width}"' if picture.width else ""
    return f'<img src="{escape(picture.url)}" alt="{escape(alt or picture.alt or "")}"{width} style="{IMAGE_STYLE}">'


def _cell_style(text: str) -> str:
    return f"{CELL_STYLE} white-space: nowrap;" if _NUMBER_CELL.fullmatch(text) else CELL_STYLE


def _html_block(block: Block, said: Mapping[str, str]) -> str:
    if block.kind == "heading":
        level = min(max(block.level, 2), 4)
        return f"<h{level}>{_html_spans(block.spans)}</h{level}>"
    if block.kind == "paragraph":
        return f"<p>{_html_spans(block.spans)}</p>"
    if block.kind == "list":
        tag = "ol" if block.ordered else "ul"
        start = f' start="{block.start}"' if block.ordered and block.start != 1 else ""
        items = "".join("<li>" + _html_list_item(item, said) + "</li>" for item in block.items)
        return f"<{tag}{start}>{items}</{tag}>"
    if block.kind == "table":
        rows = []
        for number, row in enumerate(block.rows):
            cell = "th" if number < block.header_rows else "td"
            rows.append(
                "<tr>" + "".join(f'<{cell} style="{_cell_style(c)}">{escape(c)}</{cell}>' for c in row) + "</tr>"
            )
        table = f'<table role="presentation" style="{TABLE_STYLE}">{"".join(rows)}</table>'
        return f'<div style="{TABLE_BOX_STYLE}">{table}</div>'
    if block.kind == "figure" and block.picture is not None:
        caption = f"<p><em>{escape(block.caption)}</em></p>" if block.caption else ""
        return f"<p>{_html_picture(block.picture)}</p>{caption}"
    if block.kind == "embed" and block.url:
        label = escape(block.caption or said["watch_video"])
        play = "\u25b6"
        thumbnail = (
            f'<a href="{escape(block.url)}">{_html_picture(block.picture, alt=f"{play} {label}")}</a>'
            if block.picture
            else ""
        )
        return f'<p>{thumbnail}<a href="{escape(block.url)}">{play} {label}</a></p>'
    if block.kind == "quote" and block.items:
        return "<blockquote>" + "".join(_html_block(child, said) for child in block.items[0]) + "</blockquote>"
    if block.kind == "button" and block.url:
        return f'<p><a href="{escape(block.url)}" style="{BUTTON_STYLE}">{escape(block.caption)}</a></p>'
    return ""


def _html_list_item(blocks: Sequence[Block], said: Mapping[str, str]) -> str:
    # A list item's first paragraph is its line, not a paragraph of its own (no gap after the bullet).
    out = []
    for number, block in enumerate(blocks):
        out.append(_html_spans(block.spans) if number == 0 and block.kind == "paragraph" else _html_block(block, said))
    return "".join(out)
