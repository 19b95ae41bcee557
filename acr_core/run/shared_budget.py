"""One budget per process: the per-category token buckets that all of an instance's runs share.

ACR's limits are per identity per registry (docs/acr-facts.md section 4.1), and one function
instance runs several cleanups at once (the queue trigger's batch, Event Grid deliveries). With
a budget of its own, each run would be given a fixed part of the instance's share and leave it
unused while it lists, reads and plans, and between runs. One set of budgets per instance, kept
from run to run, is used by whichever run has a request ready: while one run reads, another
deletes, and the instance as a whole still sends no more than its share (the identity's limit
divided by `maximumInstanceCount`, computed in infra/modules/function-app.bicep), whatever the
number of runs at once. A 429 pauses and slows the category for every run of the instance, as
the registry's `Retry-After` holds for the identity, not for one run.

Nothing is shared between processes: that would need a distributed counter, which the fleet's
arithmetic (docs/operations.md, "A fleet within one identity's budget") makes unnecessary.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping

from acr_core.run.limiter import Budget, Category, ExecutionLimits, category_budgets

# The budgets' paces per category: two runs with the same paces share, whatever their concurrency.
_Key = tuple[str, str, tuple[float | None, ...]]


class SharedBudgets:
    """The budgets of one process, per event loop and per (registry, identity, paces).

    Per event loop because the buckets' locks belong to the loop they are used in: the Functions
    worker runs every invocation on one loop, while tests and the CLI start a new one with each
    `asyncio.run`, and a loop that is gone takes its budgets with it.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._by_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[_Key, dict[Category, Budget]]
        ] = weakref.WeakKeyDictionary()

    def for_run(
        self, registry: str, identity: str, limits: ExecutionLimits
    ) -> Mapping[Category, Budget]:
        """The budgets a run against `registry` as `identity` with `limits` draws from: the
        same objects for every such run on the running loop."""
        kept = self._by_loop.setdefault(asyncio.get_running_loop(), {})
        key = (registry, identity, tuple(limits.limit(c) for c in Category))
        budgets = kept.get(key)
        if budgets is None:
            budgets = kept[key] = category_budgets(limits, clock=self._clock, sleep=self._sleep)
        return budgets
