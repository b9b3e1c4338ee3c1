"""Iterating in chunks: what streams a large ledger or audience page by page, and sends it chunk by chunk."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")


def batched(values: Iterable[T], size: int) -> Iterator[list[T]]:
    """``values`` in lists of ``size`` (the last one shorter), read lazily (``itertools.batched`` from Python 3.12).

    Raises ValueError when ``size`` is below 1.
    """
    if size < 1:
        raise ValueError(f"a batch holds at least one value, not {size}")
    iterator = iter(values)
    while batch := list(islice(iterator, size)):
        yield batch
