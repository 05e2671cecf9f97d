"""Credit reservations at scale: N gates with ``credits_needed`` beside N plain gates, on one connection.

What is measured: N = 100 and 1000 deferred ``TamtamCreditsTrigger`` gates inside one asyncio event loop
(as in Airflow's triggerer), arriving at random offsets within the first interval, polling for 5 intervals
of P = 1.0 s against a FakeTamtamServer (child process) answering after 200 ms.

* reserved: gates with ``credits_needed=500`` on a balance of 5,200: exactly 10 are admitted. After 2.5
  intervals the admitted runs "spend" their 5,000 through the fake server's spend endpoint and the plan is
  topped up by 5,000, which admits exactly 10 more; the rest wait until their ``end_time``. Every check
  goes through the ledger of the (connection, credit type), kept in memory here (no Airflow supervisor).
* plain: the same N gates without ``credits_needed``, waiting for an unreachable floor: the shared poll
  alone, as measured in ``bench/coalescing.py``.

Per case, in a fresh ``asyncio.run``: API calls per interval (credits requests the server received / the
window in intervals, the window running until the last gate's event) and the event loop's worst and 99th
percentile lag (a ticker sleeping 5 ms records how late it woke). N is at least 100 so that most gates wait
through the whole window: with fewer, all are admitted within the first interval and a single call over
a window shorter than an interval reads as more than one per interval.

Bars: reserved <= 1 API call per interval for every N, and reserved worst loop lag < 20 ms at N = 1000.
A miss prints MISS; a functional failure (not exactly 10 + 10 admitted, or an unexpected event) exits 1.

Run: ``.venv/bin/python bench/reservations.py [--sizes 100 1000]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import sys
import time
from dataclasses import dataclass, field

from _support import (
    control,
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
UNREACHABLE = 2**31
POLL_INTERVAL = 1.0
INTERVALS = 5
LATENCY = 0.2
NEEDED = 500
START_USED, START_TOTAL = 4_800, 10_000  # 5,200 remaining: room for 10 gates of 500
REFILL_AT = 2.5  # intervals after the start: the admitted runs spend, and the plan grows by as much
END_SLACK = 0.1
GRACE = 1.5
TICK = 0.005
CALLS_BAR = 1.0
LAG_BAR_MS = 20.0
LAG_BAR_N = 1000
SEED = 20261126


@dataclass
class CaseResult:
    contender: str
    n: int
    window: float = 0.0
    calls: int = 0
    worst_lag: float = 0.0
    p99_lag: float = 0.0
    events: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def calls_per_interval(self) -> float:
        return self.calls / (self.window / POLL_INTERVAL)


def _credits(used: int, total: int) -> list[dict[str, object]]:
    return [
        {
            "credit_type": CREDIT_TYPE,
            "used_credits": used,
            "total_credits": total,
            "remaining_credits": total - used,
        }
    ]


async def _gate(offset: float, index: int, reserved: bool, result: CaseResult) -> None:
    """A deferred sensor arriving at ``offset``: one trigger, run to its single event."""
    from airflow_provider_tamtam.triggers.tamtam import TamtamCreditsTrigger

    await asyncio.sleep(offset)
    trigger = TamtamCreditsTrigger(
        credit_type=CREDIT_TYPE,
        min_credits=0 if reserved else UNREACHABLE,
        tamtam_conn_id=CONN_ID,
        poll_interval=POLL_INTERVAL,
        end_time=time.time() + INTERVALS * POLL_INTERVAL + END_SLACK,
        credits_needed=NEEDED if reserved else None,
        waiting_since=float(index),  # place in line: the order of arrival
    )
    events = [event.payload async for event in trigger.run()]
    status = events[0].get("status") if len(events) == 1 else f"{len(events)} events"
    result.events[str(status)] = result.events.get(str(status), 0) + 1


async def _refill(base_url: str, admitted: int) -> None:
    """The admitted runs spend what they reserved, then the plan grows by as much (off the event loop)."""
    await asyncio.sleep(REFILL_AT * POLL_INTERVAL)
    spent = admitted * NEEDED
    await asyncio.to_thread(
        control, base_url, "POST", "spend", {"credit_type": CREDIT_TYPE, "credits": spent}
    )
    await asyncio.to_thread(
        control, base_url, "PUT", "credits", {"credits": _credits(START_USED + spent, START_TOTAL + spent)}
    )


async def _run_case(base_url: str, contender: str, n: int) -> CaseResult:
    from airflow_provider_tamtam.reservations import MemoryStore, use_store

    use_store(MemoryStore())
    result = CaseResult(contender, n)
    rng = random.Random(SEED + n)
    offsets = sorted(rng.uniform(0.0, POLL_INTERVAL) for _ in range(n))
    lags: list[tuple[float, float]] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(loop_lag_ticker(lags, stop, TICK))
    await asyncio.sleep(0.05)
    reserved = contender == "reserved"
    start = time.monotonic()
    refill = asyncio.create_task(_refill(base_url, min(n, 10)))
    tasks = [asyncio.create_task(_gate(offset, i, reserved, result)) for i, offset in enumerate(offsets)]
    cap = POLL_INTERVAL + INTERVALS * POLL_INTERVAL + END_SLACK + LATENCY + GRACE
    done, pending = await asyncio.wait(tasks, timeout=cap)
    result.window = time.monotonic() - start
    stop.set()
    await asyncio.gather(ticker, refill, return_exceptions=True)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if pending:
        result.failures.append(f"{len(pending)} gates still running at the cap")
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            result.failures.append(f"{type(exc).__name__}: {exc}")
    ordered = sorted(lag for _, lag in lags)
    result.worst_lag = ordered[-1] if ordered else 0.0
    result.p99_lag = ordered[int(0.99 * (len(ordered) - 1))] if ordered else 0.0
    admitted = result.events.get("success", 0)
    expected = min(n, 20) if reserved else 0
    if admitted != expected:
        result.failures.append(f"{admitted} gates admitted, expected {expected}")
    if result.events.get("timeout", 0) != n - expected:
        result.failures.append(f"events {result.events}, expected {n - expected} timeouts")
    return result


def run_case(base_url: str, contender: str, n: int) -> CaseResult:
    control(base_url, "PUT", "credits", {"credits": _credits(START_USED, START_TOTAL)})
    gc.collect()
    request_log(base_url, reset=True)
    result = asyncio.run(_run_case(base_url, contender, n))
    result.calls, _ = request_log(base_url)
    return result


async def _warm_up() -> None:
    from airflow_provider_tamtam.triggers.tamtam import TamtamCreditsTrigger

    for needed in (None, 1):
        trigger = TamtamCreditsTrigger(
            CREDIT_TYPE, UNREACHABLE, CONN_ID, poll_interval=0.05, end_time=time.time(), credits_needed=needed
        )
        async for _ in trigger.run():
            pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    sizes: list[int] = parser.parse_args().sizes

    results: dict[tuple[str, int], CaseResult] = {}
    with fake_server_process(latency=LATENCY, credits=_credits(START_USED, START_TOTAL)) as base_url:
        define_tamtam_connection(CONN_ID, base_url)
        asyncio.run(_warm_up())
        gc.collect()
        gc.freeze()  # Airflow's import-time heap: see bench/coalescing.py
        for n in sizes:
            order = ("reserved", "plain") if sizes.index(n) % 2 == 0 else ("plain", "reserved")
            for contender in order:
                results[contender, n] = run_case(base_url, contender, n)

    print(
        f"## {INTERVALS} poll intervals of P = {POLL_INTERVAL:.1f} s on one connection, server latency "
        f"{LATENCY * 1e3:.0f} ms; reserved gates need {NEEDED} each of 5,200 remaining, and after "
        f"{REFILL_AT} intervals the admitted runs spend theirs and the plan is topped up by as much\n"
    )
    print(
        "| N | reserved: calls/interval | reserved: worst (p99) lag ms | reserved: admitted "
        "| plain: calls/interval | plain: worst (p99) lag ms |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        reserved, plain = results["reserved", n], results["plain", n]
        print(
            f"| {n} | {reserved.calls_per_interval:.2f} "
            f"| {reserved.worst_lag * 1e3:.1f} ({reserved.p99_lag * 1e3:.1f}) "
            f"| {reserved.events.get('success', 0)} | {plain.calls_per_interval:.2f} "
            f"| {plain.worst_lag * 1e3:.1f} ({plain.p99_lag * 1e3:.1f}) |"
        )
    print()
    worst_calls = max(results["reserved", n].calls_per_interval for n in sizes)
    print(
        f"Bar: reserved <= {CALLS_BAR:.0f} call per interval for every N: worst {worst_calls:.2f} "
        f"-> {verdict(worst_calls <= CALLS_BAR)}"
    )
    if LAG_BAR_N in sizes:
        lag_ms = results["reserved", LAG_BAR_N].worst_lag * 1e3
        plain_ms = results["plain", LAG_BAR_N].worst_lag * 1e3
        print(
            f"Bar: reserved worst loop lag < {LAG_BAR_MS:.0f} ms at N = {LAG_BAR_N}: {lag_ms:.1f} ms "
            f"-> {verdict(lag_ms < LAG_BAR_MS)} (plain gates: {plain_ms:.1f} ms)"
        )
    failures = [f"{r.contender} N={r.n}: {f}" for r in results.values() for f in r.failures]
    if failures:
        print("\nFAILED:", *failures[:20], sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
