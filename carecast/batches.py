"""Iterating in chunks: what streams a large ledger or audience page by page, and sends it chunk by chunk, a few
sends in flight at once where the provider allows."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from itertools import islice
from types import TracebackType
from typing import Generic, Self, TypeVar

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


class InFlight(Generic[T]):
    """Up to ``limit`` calls running at once on threads of their own (inline, one after another, when 1), their
    results handed back as they end. Leaving the ``with`` block waits for those still running."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._pool = ThreadPoolExecutor(limit, thread_name_prefix="send") if limit > 1 else None
        self._running: set[Future[T]] = set()

    def room(self) -> list[T]:
        """Wait until fewer than ``limit`` calls are running; return the results of those that ended meanwhile.
        Raises whatever an ended call raised."""
        if len(self._running) >= self.limit:
            ended, self._running = wait(self._running, return_when=FIRST_COMPLETED)
        else:
            ended = {future for future in self._running if future.done()}
            self._running -= ended
        return [future.result() for future in ended]

    def start(self, call: Callable[[], T]) -> list[T]:
        """Start ``call`` (call ``room`` first); return its result when it ran inline, else nothing yet."""
        if self._pool is None:
            return [call()]
        self._running.add(self._pool.submit(call))
        return []

    def finish(self) -> list[T]:
        """Wait for every call running and return their results. Raises whatever one of them raised."""
        ended, self._running = wait(self._running), set()
        return [future.result() for future in ended.done]

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
