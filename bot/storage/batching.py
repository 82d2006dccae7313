"""Group commit: many callers' requests to the database in one trip.

aiosqlite runs every statement on its own thread. Each trip there and back costs two
thread hand-offs, and under load those hand-offs (the GIL changing hands at every socket
call the event loop makes meanwhile) cost more than the SQL. So requests that arrive
while a trip is out wait for the next one, which carries them all: one request alone
goes at once; twenty chats answered together share one trip instead of twenty.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Batcher"]

_T = TypeVar("_T")
_R = TypeVar("_R")


class Batcher(Generic[_T, _R]):
    """``await batcher.submit(item)`` runs ``run([item, ...])`` with every item submitted
    before that trip starts, at most ``max_batch`` at a time, one trip in flight.

    ``run`` returns one outcome per item, in order: a result, or an exception for that
    item alone. If ``run`` itself raises, every item of the batch gets that exception.
    """

    def __init__(self, run: Callable[[list[_T]], Awaitable[Sequence[_R | BaseException]]],
                 *, max_batch: int = 256) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._run = run
        self._max_batch = max_batch
        self._queue: list[tuple[_T, asyncio.Future[_R]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, item: _T) -> _R:
        future: asyncio.Future[_R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._worker is None or self._worker.done():
            # A task, not a call: it starts after every coroutine already runnable in this
            # loop iteration has had its turn to submit, so they share the first trip too.
            self._worker = asyncio.ensure_future(self._drain())
        return await future

    async def idle(self) -> None:
        """Wait until every submitted item has been run (for an orderly close)."""
        while self._worker is not None and not self._worker.done():
            await asyncio.shield(self._worker)

    async def _drain(self) -> None:
        batch: list[tuple[_T, asyncio.Future[_R]]] = []
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                try:
                    outcomes = await self._run([item for item, _ in batch])
                    if len(outcomes) != len(batch):
                        raise RuntimeError(f"batch runner returned {len(outcomes)} outcomes "
                                           f"for {len(batch)} items")
                except Exception as exc:
                    outcomes = [exc] * len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():  # the caller gave up (cancelled); the work was done
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
                batch = []
        finally:
            # Cancelled mid-trip (the loop is closing): nobody may wait forever.
            for _, future in batch + self._queue:
                if not future.done():
                    future.cancel()
            self._queue.clear()
