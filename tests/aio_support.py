"""Run coroutines strictly: asyncio debug mode, a slow-callback threshold, warnings fatal.

A blocking call on the event loop (``time.sleep``, a sync socket, sync DNS) shows up as
asyncio's "Executing <...> took N seconds" warning; this runner turns any asyncio
warning or error log into a test failure, and checks nothing is left pending.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

# A blocking call on the loop (sync DNS against a black hole, time.sleep) blocks for far
# longer than this; a loaded 2-core machine (servers of the suite running beside it) can
# delay an honest callback by a few hundred milliseconds.
SLOW_CALLBACK = 1.0


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def run_strict(main: Callable[[], Awaitable[T]], *, slow_callback: float = SLOW_CALLBACK) -> T:
    """``asyncio.run(main())`` in debug mode; fails on asyncio warnings or leftover tasks."""
    handler = _Collect()
    logger = logging.getLogger("asyncio")
    logger.addHandler(handler)

    async def wrapper() -> T:
        loop = asyncio.get_running_loop()
        loop.slow_callback_duration = slow_callback
        result = await main()
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert not pending, f"tasks left pending: {pending}"
        return result

    try:
        result = asyncio.run(wrapper(), debug=True)
    finally:
        logger.removeHandler(handler)
    problems = [r.getMessage() for r in handler.records]
    assert not problems, f"asyncio reported: {problems}"
    return result
