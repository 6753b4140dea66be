"""The single ``async for`` consumer of a client's queue.

``WsClient`` and ``DataClient`` each deliver to one ``async for`` loop at a time (two loops would
split the stream between them; more consumers register callbacks or handlers instead). The slot
must be free again as soon as a loop is over, including a loop left with ``break``: an async
generator would only release it when the event loop gets round to finalizing it, so a second
``async for`` written right after a ``break`` would be refused. :class:`QueueIterator` releases
the slot synchronously: when its queue ends, when :meth:`aclose` is called, and when the loop that
held it drops it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

__all__ = ["QueueIterator"]

T = TypeVar("T")


class QueueIterator(Generic[T]):
    """Iterates ``queue`` until ``sentinel`` comes out of it, or it is empty once ``closed()``.

    Args:
        queue: the client's delivery queue.
        sentinel: the object the client puts on the queue when it closes.
        closed: whether the client is closed (an empty queue then ends the iteration).
        release: called exactly once, when this consumer is done; frees the client's slot.
    """

    __slots__ = ("_closed", "_done", "_queue", "_release", "_sentinel")

    def __init__(
        self,
        queue: asyncio.Queue[Any],
        sentinel: object,
        closed: Callable[[], bool],
        release: Callable[[], None],
    ) -> None:
        self._queue = queue
        self._sentinel = sentinel
        self._closed = closed
        self._release = release
        self._done = False

    def __aiter__(self) -> QueueIterator[T]:
        return self

    async def __anext__(self) -> T:
        if self._done:
            raise StopAsyncIteration
        if self._closed() and self._queue.empty():
            self._finish()
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is self._sentinel:
            self._finish()
            raise StopAsyncIteration
        return cast("T", item)

    async def aclose(self) -> None:
        """End this consumer now (what ``async with contextlib.aclosing(...)`` calls)."""
        self._finish()

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._release()

    def __del__(self) -> None:
        # A loop left with ``break`` drops its iterator: free the slot then, not at some later
        # finalization, so that a new ``async for`` may start at once.
        self._finish()
