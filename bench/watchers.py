"""Benchmark: many Tamtam credit watchers on one connection, shared polling versus independent polls.

For N = 1, 100 and 1000 watchers on one connection (poll interval 1 s, fake server answering in 200 ms;
every other watcher a level condition, the rest a ``runs_out_within`` forecast),
run each side for 5 intervals in a fresh event loop and measure:

* API calls per interval, counted by the fake server;
* the worst event-loop lag: how late a ticker task sleeping 5 ms wakes up, at worst.

"shared" runs TamtamCreditsEventTrigger through Airflow's real SharedStreamManager where the installed
Airflow has it (3.3+), else through each trigger's ``run()``; "independent" is what a poll-per-watcher
trigger costs: each watcher its own ``await TamtamHook(conn).aget_credits()`` then a sleep. The fake
server runs in a child process (``python -m airflow_provider_tamtam.testing.fake_server``), so that its
handler threads do not take this process's GIL and distort the lag.

The bar: at most 1 call per interval for every N, and a worst lag under 20 ms at N = 1000, on the
shared side. Times are printed, never asserted. Usage::

    python bench/watchers.py [--sizes 1 100 1000] [--intervals 5] [--repeats 3] [--path auto|shared|run]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from _support import define_tamtam_connection, fake_server_process, request_log, use_throwaway_airflow_home

CONN_ID = "tamtam_bench"
CREDIT_TYPE = "MaxKeyAccountsUnlocked"
POLL_INTERVAL = 1.0
LATENCY = 0.2
TICK = 0.005
CALLS_BAR = 1.0
LAG_HEADER = "lag worst (max)/p99/GC ms"
LAG_BAR_MS = 20.0

use_throwaway_airflow_home()  # Airflow reads its configuration on import: a throwaway home, quiet logs

import structlog  # noqa: E402

from airflow_provider_tamtam._compat import aget_connection  # noqa: E402
from airflow_provider_tamtam.client import REQUEST_THREADS  # noqa: E402
from airflow_provider_tamtam.hooks.tamtam import TamtamHook  # noqa: E402
from airflow_provider_tamtam.triggers.credit_events import HAS_SHARED_STREAMS  # noqa: E402
from airflow_provider_tamtam.triggers.tamtam import TamtamCreditsEventTrigger  # noqa: E402


def quiet_logs() -> None:
    """Keep 1000 watchers' INFO lines ("firing") out of the table."""
    try:
        from airflow.sdk._shared.logging.structlog import AirflowBoundLoggerFilteringAtWarning

        structlog.configure(wrapper_class=AirflowBoundLoggerFilteringAtWarning)
    except ImportError:
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    for name in ("airflow_provider_tamtam", "airflow", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)


@dataclass
class Result:
    calls: int
    intervals: int
    lags: list[float]
    gc_pauses: list[float]
    events: int

    @property
    def worst_lag(self) -> float:
        return max(self.lags, default=0.0)

    @property
    def p99_lag(self) -> float:
        ordered = sorted(self.lags)
        return ordered[int(0.99 * (len(ordered) - 1))] if ordered else 0.0

    @property
    def per_interval(self) -> float:
        return self.calls / self.intervals


async def measure(
    base_url: str, n: int, intervals: int, watch: Callable[[int], Coroutine[Any, Any, None]]
) -> tuple[int, list[float], list[float]]:
    """Run ``n`` watchers for ``intervals`` poll intervals beside a ticker that records the worst lag.

    Watchers start one per loop iteration, as the triggerer starts its triggers. Garbage collector pauses
    are recorded as well: a full collection of an Airflow process's heap shows up as loop lag too. The
    server's request log is cleared through its control API from a worker thread, before the lags start
    counting, and read at the end with the loop blocked, which the ticker never records: it is cancelled
    before it wakes.
    """
    lags: list[float] = []
    pauses: list[float] = []
    started = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append(time.perf_counter() - started[0])

    async def ticker() -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(TICK)
            lags.append(time.perf_counter() - before - TICK)

    gc.collect()  # start every run from a settled heap, not with the garbage of the previous one
    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)  # let the ticker settle before the watchers start
    await asyncio.to_thread(request_log, base_url, True)
    del lags[:]
    gc.callbacks.append(on_gc)
    ends = time.monotonic() + intervals * POLL_INTERVAL
    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(watch(i)))
        await asyncio.sleep(0)
    await asyncio.sleep(ends - time.monotonic())
    calls, _ = request_log(base_url)
    gc.callbacks.remove(on_gc)
    tick.cancel()
    for task in tasks:
        task.cancel()
    await asyncio.gather(tick, *tasks, return_exceptions=True)
    return calls, lags, pauses


def watchers(n: int) -> list[TamtamCreditsEventTrigger]:
    """N distinct watchers (each its own condition, as separate assets would have): every other one a level
    already met, which fires once; the rest a run-out forecast, which never fires on the flat usage."""
    return [
        TamtamCreditsEventTrigger(
            credit_type=CREDIT_TYPE, threshold=100 + i, tamtam_conn_id=CONN_ID, poll_interval=POLL_INTERVAL
        )
        if i % 2 == 0
        else TamtamCreditsEventTrigger(
            credit_type=CREDIT_TYPE,
            threshold=3600 + i,
            condition="runs_out_within",
            tamtam_conn_id=CONN_ID,
            poll_interval=POLL_INTERVAL,
        )
        for i in range(n)
    ]


def expected_events(n: int) -> int:
    """The level watchers among :func:`watchers` ``(n)``: each fires exactly once."""
    return (n + 1) // 2


async def shared_side(base_url: str, n: int, intervals: int, path: str) -> Result:
    triggers = watchers(n)
    fired = [0] * n
    manager: Any = None
    if path == "shared":
        from airflow.triggers.shared_stream import SharedStreamManager

        manager = SharedStreamManager()

    async def through_manager(i: int) -> None:
        trigger = triggers[i]
        key = trigger.shared_stream_key()
        try:
            async for _ in trigger.filter_shared_stream(
                manager.subscribe(trigger_id=i, trigger=trigger, key=key)
            ):
                fired[i] += 1
        finally:
            await manager.unsubscribe(i, key)

    async def through_run(i: int) -> None:
        async for _ in triggers[i].run():
            fired[i] += 1

    watch: Callable[[int], Coroutine[Any, Any, None]] = through_manager if path == "shared" else through_run
    calls, lags, pauses = await measure(base_url, n, intervals, watch)
    if manager is not None:
        await manager.stop_all()
    return Result(calls, intervals, lags, pauses, sum(fired))


async def independent_side(base_url: str, n: int, intervals: int) -> Result:
    async def poll_forever(_: int) -> None:
        hook = TamtamHook(CONN_ID)
        while True:
            with contextlib.suppress(Exception):
                await hook.aget_credits()
            await asyncio.sleep(POLL_INTERVAL)

    calls, lags, pauses = await measure(base_url, n, intervals, poll_forever)
    return Result(calls, intervals, lags, pauses, 0)


def summary(runs: list[Result]) -> str:
    """Worst lag as median (max) over the repeats, median 99th percentile and longest GC pause, in ms."""
    worst = statistics.median(r.worst_lag for r in runs) * 1000
    highest = max(r.worst_lag for r in runs) * 1000
    p99 = statistics.median(r.p99_lag for r in runs) * 1000
    gc_pause = max((max(r.gc_pauses, default=0.0) for r in runs), default=0.0) * 1000
    return f"{worst:.1f} ({highest:.1f}) / {p99:.1f} / {gc_pause:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--intervals", type=int, default=5)
    parser.add_argument("--path", choices=("auto", "shared", "run"), default="auto")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side per N")
    args = parser.parse_args(argv)
    path = args.path if args.path != "auto" else ("shared" if HAS_SHARED_STREAMS else "run")
    if path == "shared" and not HAS_SHARED_STREAMS:
        parser.error("this Airflow has no SharedStreamManager; use --path run")
    quiet_logs()

    import airflow

    line = {"credit_type": CREDIT_TYPE, "used_credits": 0, "total_credits": 5000, "remaining_credits": 5000}
    with fake_server_process(LATENCY, credits=[line]) as base_url:
        define_tamtam_connection(CONN_ID, base_url)
        # The first connection lookup of a process imports Airflow's execution-time modules on the loop;
        # a triggerer has them loaded before it runs any trigger, so pay that here, once, and show it.
        before = time.perf_counter()
        asyncio.run(aget_connection(CONN_ID))
        first_lookup = time.perf_counter() - before
        # Freeze the warmed-up heap (Airflow's import-time objects), so a full collection of it cannot land
        # at random inside one run and be charged to whichever side happens to be measured.
        gc.collect()
        gc.freeze()
        label = "SharedStreamManager" if path == "shared" else "run() + SharedCreditsPoll"
        print(
            f"Airflow {airflow.__version__}, Python {sys.version.split()[0]}: {args.intervals} intervals of "
            f"{POLL_INTERVAL:.0f} s, server latency {LATENCY * 1000:.0f} ms, lag ticker {TICK * 1000:.0f} ms"
        )
        print(f"shared side: {label}; independent side: one TamtamHook.aget_credits() + sleep per watcher")
        print(f"first connection lookup of the process (before measuring): {first_lookup * 1000:.0f} ms")
        print(
            f"each side runs {args.repeats} times per N, alternating, each in a fresh event loop after "
            "gc.collect() (import-time heap frozen); watchers start one per loop turn"
        )
        print()
        header = (
            f"{'N':>5} | {'shared calls/int':>16} | {LAG_HEADER:>27} | {'events':>6} | "
            f"{'indep. calls/int':>16} | {LAG_HEADER:>27} | verdict"
        )
        print(header)
        print("-" * len(header))
        verdicts: list[bool] = []
        started = time.monotonic()
        for n in args.sizes:
            shared: list[Result] = []
            independent: list[Result] = []
            for _ in range(args.repeats):
                shared.append(asyncio.run(shared_side(base_url, n, args.intervals, path)))
                independent.append(asyncio.run(independent_side(base_url, n, args.intervals)))
            calls = max(r.per_interval for r in shared)
            lag_ok = n < 1000 or statistics.median(r.worst_lag for r in shared) * 1000 < LAG_BAR_MS
            events = min(r.events for r in shared)
            bars = (("calls", calls <= CALLS_BAR), ("lag", lag_ok), ("events", events == expected_events(n)))
            misses = [what for what, good in bars if not good]
            verdicts.append(not misses)
            print(
                f"{n:>5} | {calls:>16.2f} | {summary(shared):>27} | {events:>6} | "
                f"{max(r.per_interval for r in independent):>16.2f} | {summary(independent):>27} | "
                + ("PASS" if not misses else "MISS (" + ", ".join(misses) + ")")
            )
        print()
        print(
            f"bar: shared calls per interval <= {CALLS_BAR:g} for every N (highest of the runs), worst lag "
            f"< {LAG_BAR_MS:g} ms at N = 1000 (median of the runs' worst; the highest is in brackets)"
        )
        print(
            "events = watchers that fired, fewest of the runs (each level watcher exactly once, the forecast "
            "watchers never); p99 = median of the runs' 99th percentile lag; GC = longest garbage collector "
            "pause seen"
        )
        print(
            "independent polls want N calls per interval; the client's request threads "
            f"({REQUEST_THREADS}, each busy {LATENCY * 1000:.0f} ms per call) cap what they reach"
        )
        print(f"overall: {'PASS' if all(verdicts) else 'MISS'} ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
