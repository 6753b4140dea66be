"""QueueIterator: the single `async for` consumer of a client's queue frees its place exactly once."""

from __future__ import annotations

import asyncio
import gc

from nautilus_dydx.transport.consumer import QueueIterator

END = object()


class Slot:
    def __init__(self) -> None:
        self.releases = 0
        self.closed = False

    def release(self) -> None:
        self.releases += 1

    def iterator(self, queue: asyncio.Queue[object]) -> QueueIterator[int]:
        return QueueIterator(queue, END, lambda: self.closed, self.release)


async def test_items_in_order_until_the_sentinel_then_released_once() -> None:
    queue: asyncio.Queue[object] = asyncio.Queue()
    for item in (1, 2, END, 3):
        queue.put_nowait(item)
    slot = Slot()
    it = slot.iterator(queue)
    assert [x async for x in it] == [1, 2]
    assert slot.releases == 1
    assert [x async for x in it] == []  # ended for good; 3 is left for the next consumer
    assert queue.get_nowait() == 3
    del it
    gc.collect()
    assert slot.releases == 1


async def test_a_closed_client_with_an_empty_queue_ends_the_loop() -> None:
    slot = Slot()
    slot.closed = True
    queue: asyncio.Queue[object] = asyncio.Queue()
    assert [x async for x in slot.iterator(queue)] == []
    assert slot.releases == 1


async def test_break_releases_when_the_loop_drops_the_iterator() -> None:
    queue: asyncio.Queue[object] = asyncio.Queue()
    for item in (1, 2):
        queue.put_nowait(item)
    slot = Slot()
    async for item in slot.iterator(queue):
        assert item == 1
        break
    assert slot.releases == 1  # at once, not when the event loop finalizes something later


async def test_aclose_releases_and_a_waiting_get_is_not_lost() -> None:
    queue: asyncio.Queue[object] = asyncio.Queue()
    slot = Slot()
    it = slot.iterator(queue)
    waiting = asyncio.ensure_future(anext(it))
    await asyncio.sleep(0)
    queue.put_nowait(7)
    assert await waiting == 7
    await it.aclose()
    await it.aclose()
    assert slot.releases == 1
