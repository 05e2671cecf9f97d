"""Request coalescing of ``TamtamCreditsTrigger`` against one request per trigger and interval.

What is measured: N = 1, 10, 100, 1000 concurrent waits on ONE Tamtam connection inside one asyncio event
loop (as in Airflow's triggerer), each waiting for an unreachable credit level so that every waiter keeps
polling for 5 poll intervals of P = 1.0 s against a FakeTamtamServer answering after 200 ms. Waiters start
at random offsets within the first interval, as deferred tasks would arrive, and each stops at its own
``end_time`` = arrival + 5 P + 0.1 s.

* shared: N ``TamtamCreditsTrigger`` instances, each consumed with ``async for event in trigger.run()``;
  they all go through the event loop's ``SharedCreditsPoll`` and each ends with a ``timeout`` event. Each
  is created as a deferred sensor creates it, with ``not_before`` = its arrival (the sensor's own check),
  so it never takes an answer to a request sent before it arrived.
* independent: N pollers that each do what the dbt-cloud and http providers' triggers do: their own
  ``TamtamHook(conn)``, then ``await hook.aget_credits()`` and ``asyncio.sleep(P)`` in a loop, i.e. one
  request per waiter per interval.

For each (contender, N), in a fresh ``asyncio.run`` (``SharedCreditsPoll`` is cached per event loop):
API calls per interval = credits requests the server received / (wall-clock window / P), where the window
runs from the first arrival to the last waiter finishing; and the event loop's worst lag, taken by a ticker
task that sleeps 5 ms in a loop and records how late it woke. Every case is capped at the natural window
plus a grace period; waiters still running then are cancelled and the case is reported as capped (this is
what happens to the independent pollers once they need more concurrent requests than the client's request
threads can run, since ``aget_credits`` runs each request in a worker thread).

The server is the shipped FakeTamtamServer run as a child process (``python -m
airflow_provider_tamtam.testing.fake_server``) so that its handler threads do not take this process's GIL
and distort the loop-lag measurement; its request count is read from its control API between cases.

The worst lag is a maximum, so one hiccup of a busy machine sets it: the details table adds, per case, the
median over the poll intervals of each interval's worst lag (a stall that recurs every interval shows
there, a one-off does not) and the shortest gap between two requests the server saw. Airflow's
import-time heap is frozen (``gc.freeze()``) after a warm-up, so that a ~200 ms full collection of
Airflow's own objects cannot land at random inside one case and be charged to whichever contender runs.

Bar: shared <= 1 API call per interval for every N, and the shared path's worst loop lag < 20 ms at
N = 1000. A miss prints MISS but does not fail the script; only a functional failure (a waiter erroring,
or a trigger ending with anything but its timeout event) exits 1.

Run: ``.venv/bin/python bench/coalescing.py [--sizes 1 10 100 1000] [--intervals 5]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import random
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from _support import (
    define_tamtam_connection,
    fake_server_process,
    loop_lag_ticker,
    request_log,
    use_throwaway_airflow_home,
    verdict,
)

use_throwaway_airflow_home()  # before anything imports Airflow; it also quiets the triggers' per-poll INFO

CONN_ID = "tamtam_bench"
CREDIT_TYPE = "MaxKeyAccountsUnlocked"
UNREACHABLE = 2**31  # more than an int32 credit line can ever hold
POLL_INTERVAL = 1.0  # P, seconds
INTERVALS = 5
LATENCY = 0.2  # seconds the fake server takes to answer
END_SLACK = 0.1  # end_time = arrival + INTERVALS * P + END_SLACK
GRACE = 1.5  # seconds past the natural window before a case is capped
TICK = 0.005  # the lag ticker's sleep
CALLS_BAR = 1.0
LAG_BAR_MS = 20.0
LAG_BAR_N = 1000
SEED = 20240601


@dataclass
class CaseResult:
    contender: str
    n: int
    window: float = 0.0
    calls: int = 0
    worst_lag: float = 0.0
    p99_lag: float = 0.0
    typical_worst_lag: float = 0.0
    min_gap: float | None = None
    finished: int = 0
    capped: bool = False
    polls: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def calls_per_interval(self) -> float:
        return self.calls / (self.window / POLL_INTERVAL)


async def _shared_waiter(offset: float, result: CaseResult) -> None:
    """A deferred sensor arriving at ``offset``: one TamtamCreditsTrigger, run to its single event."""
    from airflow_provider_tamtam.triggers.tamtam import TamtamCreditsTrigger

    await asyncio.sleep(offset)
    trigger = TamtamCreditsTrigger(
        credit_type=CREDIT_TYPE,
        min_credits=UNREACHABLE,
        tamtam_conn_id=CONN_ID,
        poll_interval=POLL_INTERVAL,
        end_time=time.time() + INTERVALS * POLL_INTERVAL + END_SLACK,
        not_before=time.time(),  # as a deferred sensor: no answer older than its own check on the worker
    )
    events = [event.payload async for event in trigger.run()]
    if len(events) != 1 or events[0].get("status") != "timeout":
        result.failures.append(f"trigger ended with {events!r}, expected one timeout event")
    result.finished += 1


async def _independent_waiter(offset: float, result: CaseResult) -> None:
    """Same wait, the way dbt-cloud / http triggers poll: its own hook, one request per interval."""
    from airflow_provider_tamtam.hooks.tamtam import TamtamHook
    from airflow_provider_tamtam.models import CreditSummary

    await asyncio.sleep(offset)
    end_time = time.time() + INTERVALS * POLL_INTERVAL + END_SLACK
    hook = TamtamHook(CONN_ID)
    polls = 0
    try:
        while True:
            summary = CreditSummary.of(await hook.aget_credits(), CREDIT_TYPE)
            polls += 1
            if summary.remaining >= UNREACHABLE:
                result.failures.append(f"unreachable level reached: {summary!r}")
                return
            left = end_time - time.time()
            if left <= 0:
                break
            await asyncio.sleep(min(POLL_INTERVAL, left))
        result.finished += 1
    finally:
        result.polls.append(polls)


async def _run_case(
    contender: str, n: int, waiter: Callable[[float, CaseResult], Coroutine[Any, Any, None]]
) -> CaseResult:
    result = CaseResult(contender, n)
    rng = random.Random(SEED + n)
    offsets = [rng.uniform(0.0, POLL_INTERVAL) for _ in range(n)]
    lags: list[tuple[float, float]] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(loop_lag_ticker(lags, stop, TICK))
    await asyncio.sleep(0.05)  # let the ticker settle before the first arrival
    cap = POLL_INTERVAL + INTERVALS * POLL_INTERVAL + END_SLACK + LATENCY + GRACE
    start = time.monotonic()
    tasks = [asyncio.create_task(waiter(offset, result)) for offset in offsets]
    done, pending = await asyncio.wait(tasks, timeout=cap)
    result.window = time.monotonic() - start
    # stop measuring before cancelling capped waiters: tearing down hundreds of tasks is not polling
    stop.set()
    ticker.cancel()
    await asyncio.gather(ticker, return_exceptions=True)
    result.capped = bool(pending)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            result.failures.append(f"{type(exc).__name__}: {exc}")
    ordered = sorted(lag for _, lag in lags)
    result.worst_lag = ordered[-1] if ordered else 0.0
    result.p99_lag = ordered[int(0.99 * (len(ordered) - 1))] if ordered else 0.0
    # The worst lag of each poll interval, median over the intervals: a stall that recurs every interval
    # (say, every waiter resuming at once when the shared answer arrives) shows here, while a one-off
    # hiccup of a busy machine does not.
    per_interval: dict[int, float] = {}
    for when, lag in lags:
        if when >= start:
            index = int((when - start) / POLL_INTERVAL)
            per_interval[index] = max(per_interval.get(index, 0.0), lag)
    result.typical_worst_lag = statistics.median(per_interval.values()) if per_interval else 0.0
    return result


def run_case(base_url: str, contender: str, n: int) -> CaseResult:
    """One (contender, N) case in a fresh event loop, with the server's request log cleared first."""
    waiter = _shared_waiter if contender == "shared" else _independent_waiter
    gc.collect()
    request_log(base_url, reset=True)
    result = asyncio.run(_run_case(contender, n, waiter))
    result.calls, times = request_log(base_url)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    result.min_gap = min(gaps) if gaps else None
    gc.collect()  # drop the independent pollers' sessions (and their server connections) before the next case
    return result


async def _warm_up() -> None:
    """Import and initialise everything the cases use lazily, so no case pays it on its event loop."""
    from airflow_provider_tamtam.hooks.tamtam import TamtamHook
    from airflow_provider_tamtam.triggers.tamtam import TamtamCreditsTrigger

    await TamtamHook(CONN_ID).aget_credits()
    trigger = TamtamCreditsTrigger(
        CREDIT_TYPE, UNREACHABLE, CONN_ID, poll_interval=0.05, end_time=time.time()
    )
    async for _ in trigger.run():
        pass


def main() -> int:
    global INTERVALS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100, 1000])
    parser.add_argument(
        "--intervals",
        type=int,
        default=INTERVALS,
        help="poll intervals per wait (default %(default)s; more shows the steady state, and takes longer)",
    )
    args = parser.parse_args()
    sizes: list[int] = args.sizes
    INTERVALS = args.intervals

    results: dict[tuple[str, int], CaseResult] = {}
    with fake_server_process(latency=LATENCY) as base_url:
        define_tamtam_connection(CONN_ID, base_url)
        asyncio.run(_warm_up())
        # Move Airflow's import-time heap out of the collector's reach, as a long-running process would
        # after its first full collections: a full collection of it takes ~200 ms here and would otherwise
        # land, at random, inside one case's window and be charged to whichever contender was running.
        gc.collect()
        gc.freeze()
        for n in sizes:
            # alternate which contender goes first so drift in machine load hits both alike
            order = ("shared", "independent") if sizes.index(n) % 2 == 0 else ("independent", "shared")
            for contender in order:
                results[contender, n] = run_case(base_url, contender, n)

    failures = [f"{r.contender} N={r.n}: {f}" for r in results.values() for f in r.failures]

    print(
        f"## {INTERVALS} poll intervals of P = {POLL_INTERVAL:.1f} s on one connection, server latency "
        f"{LATENCY * 1e3:.0f} ms, waiters arriving at random offsets within the first interval\n"
    )
    print(
        "| N | shared: calls/interval | shared: worst lag ms "
        "| independent: calls/interval | independent: worst lag ms |"
    )
    print("|---:|---:|---:|---:|---:|")
    for n in sizes:
        shared, independent = results["shared", n], results["independent", n]
        capped = " (capped)" if independent.capped else ""
        print(
            f"| {n} | {shared.calls_per_interval:.2f}{' (capped)' if shared.capped else ''} "
            f"| {shared.worst_lag * 1e3:.1f} | {independent.calls_per_interval:.2f}{capped} "
            f"| {independent.worst_lag * 1e3:.1f} |"
        )
    print()
    print(
        "Details. interval = window / P, window = first arrival to last waiter done (or the cap); "
        "min gap = shortest time between two requests the server received; typical worst lag = median "
        "over the poll intervals of each interval's worst lag (recurring stalls show, one-off hiccups of "
        "the machine do not).\n"
    )
    print(
        "| contender | N | window s | API calls | min gap s | p99 lag ms | typical worst lag ms "
        "| waiters done | polls per waiter (median) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        for contender in ("shared", "independent"):
            r = results[contender, n]
            polls = f"{statistics.median(r.polls):.0f}" if r.polls else "-"
            gap = "-" if r.min_gap is None else f"{r.min_gap:.3f}"
            print(
                f"| {contender} | {n} | {r.window:.2f}{' capped' if r.capped else ''} | {r.calls} | {gap} "
                f"| {r.p99_lag * 1e3:.1f} | {r.typical_worst_lag * 1e3:.1f} | {r.finished}/{n} | {polls} |"
            )
    print()
    capped_independent = [n for n in sizes if results["independent", n].capped]
    if capped_independent:
        from airflow_provider_tamtam.client import REQUEST_THREADS

        workers = REQUEST_THREADS
        print(
            f"Independent pollers were capped at N = {', '.join(map(str, capped_independent))}: each "
            f"aget_credits() call holds one of the client's {workers} request threads for the "
            f"{LATENCY * 1e3:.0f} ms answer, so together they can make at most ~{workers / LATENCY:.0f} "
            "calls/s and every waiter falls behind its interval; the waiters still polling at the cap "
            "were cancelled."
        )
        print()

    shared_calls_ok = all(results["shared", n].calls_per_interval <= CALLS_BAR for n in sizes)
    worst_calls = max(results["shared", n].calls_per_interval for n in sizes)
    print(
        f"Bar: shared <= {CALLS_BAR:.0f} call per interval for every N: worst {worst_calls:.2f} "
        f"-> {verdict(shared_calls_ok)}"
    )
    if LAG_BAR_N in sizes:
        lag_ms = results["shared", LAG_BAR_N].worst_lag * 1e3
        typical_ms = results["shared", LAG_BAR_N].typical_worst_lag * 1e3
        print(
            f"Bar: shared worst loop lag < {LAG_BAR_MS:.0f} ms at N = {LAG_BAR_N}: {lag_ms:.1f} ms "
            f"-> {verdict(lag_ms < LAG_BAR_MS and not results['shared', LAG_BAR_N].capped)} "
            f"(typical worst per interval {typical_ms:.1f} ms; machine noise floor, shared N = {sizes[0]}: "
            f"{results['shared', sizes[0]].worst_lag * 1e3:.1f} ms)"
        )
    else:
        print(f"Bar: shared worst loop lag at N = {LAG_BAR_N}: not run (--sizes)")

    if failures:
        print("\nFAILED:", *failures[:20], sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
