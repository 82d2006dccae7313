"""Group commit: requests that arrive together share one trip; errors stay with their item."""

from __future__ import annotations

import asyncio

import pytest

from bot.storage.batching import Batcher


class Recorder:
    """A batch runner that records each trip and doubles numbers; odd ones fail alone."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.trips: list[list[int]] = []
        self.gate = gate

    async def run(self, items: list[int]) -> list[int | BaseException]:
        self.trips.append(items)
        if self.gate is not None:
            await self.gate.wait()
        return [ValueError(f"odd {i}") if i % 2 else i * 2 for i in items]


async def test_requests_made_together_share_one_trip_and_get_their_own_results() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.run)
    results = await asyncio.gather(*(batcher.submit(i) for i in (0, 2, 4, 6)))
    assert results == [0, 4, 8, 12]
    assert recorder.trips == [[0, 2, 4, 6]]


async def test_one_request_alone_goes_at_once() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.run)
    assert await batcher.submit(2) == 4
    assert await batcher.submit(4) == 8
    assert recorder.trips == [[2], [4]]


async def test_requests_arriving_during_a_trip_share_the_next_one() -> None:
    gate = asyncio.Event()
    recorder = Recorder(gate)
    batcher = Batcher(recorder.run)
    first = asyncio.ensure_future(batcher.submit(0))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the first trip is out, waiting on the gate
    later = [asyncio.ensure_future(batcher.submit(i)) for i in (2, 4)]
    await asyncio.sleep(0)
    gate.set()
    assert await first == 0
    assert await asyncio.gather(*later) == [4, 8]
    assert recorder.trips == [[0], [2, 4]]


async def test_an_error_stays_with_its_own_request() -> None:
    batcher = Batcher(Recorder().run)
    results = await asyncio.gather(*(batcher.submit(i) for i in (2, 3, 4)), return_exceptions=True)
    assert results[0] == 4 and results[2] == 8
    assert isinstance(results[1], ValueError) and str(results[1]) == "odd 3"


async def test_a_failed_trip_fails_its_requests_and_the_next_trip_still_runs() -> None:
    calls = 0

    async def run(items: list[int]) -> list[int | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("disk full")
        return list(items)

    batcher = Batcher(run)
    results = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
    assert [type(r) for r in results] == [OSError, OSError]
    assert await batcher.submit(3) == 3


async def test_a_runner_returning_the_wrong_count_is_an_error_not_a_hang() -> None:
    async def run(items: list[int]) -> list[int | BaseException]:
        return [1]

    batcher = Batcher(run)
    results = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) and "2 items" in str(r) for r in results)


async def test_max_batch_splits_a_crowd_into_trips() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.run, max_batch=2)
    assert await asyncio.gather(*(batcher.submit(i) for i in (0, 2, 4))) == [0, 4, 8]
    assert recorder.trips == [[0, 2], [4]]
    with pytest.raises(ValueError, match="max_batch"):
        Batcher(recorder.run, max_batch=0)


async def test_a_caller_that_gives_up_does_not_disturb_the_others() -> None:
    gate = asyncio.Event()
    batcher = Batcher(Recorder(gate).run)
    quitter = asyncio.ensure_future(batcher.submit(0))
    stayer = asyncio.ensure_future(batcher.submit(2))
    await asyncio.sleep(0)
    quitter.cancel()
    gate.set()
    assert await stayer == 4
    assert quitter.cancelled()


async def test_cancelling_the_trip_releases_everyone_waiting() -> None:
    gate = asyncio.Event()  # never set: the trip hangs until cancelled
    batcher = Batcher(Recorder(gate).run)
    waiting = [asyncio.ensure_future(batcher.submit(i)) for i in (0, 2)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    queued = asyncio.ensure_future(batcher.submit(4))  # behind the hung trip
    await asyncio.sleep(0)
    assert batcher._worker is not None
    batcher._worker.cancel()
    done, pending = await asyncio.wait([*waiting, queued], timeout=1.0)
    assert not pending and all(t.cancelled() for t in done)


async def test_idle_waits_for_the_trip_in_flight() -> None:
    gate = asyncio.Event()
    recorder = Recorder(gate)
    batcher = Batcher(recorder.run)
    task = asyncio.ensure_future(batcher.submit(2))
    await asyncio.sleep(0)
    asyncio.get_running_loop().call_later(0.01, gate.set)
    await batcher.idle()
    assert task.done() and task.result() == 4
