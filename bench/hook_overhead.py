"""Per-call overhead of ``TamtamHook.get_credits()`` against plain ``requests`` and Airflow's ``HttpHook``.

What is measured: wall time of one sequential ``GET {base}/v2/credits`` against a local FakeTamtamServer
with no latency, so the client side dominates. Three contenders run side by side in one process:

* raw requests: ``session.get(url, headers={"Authorization": key}).json()`` on one ``requests.Session``;
* TamtamHook: ``hook.get_credits()`` on one hook instance (the connection is resolved once, as in a task),
  which adds tenacity's retry wrapper and pydantic validation of the body;
* HttpHook: ``HttpHook(method="GET").run("api/v2/credits", headers=...)`` then ``.json()`` on one hook
  instance; apache-airflow-providers-http resolves the connection and builds a new ``Session`` on every
  ``run()``, which is how that hook is used.

The contenders alternate in rounds (default 5 rounds of 100 calls each, the order rotated every round) so
machine noise hits all of them alike; the ratio of a contender is the median over rounds of its per-call
median divided by raw requests' per-call median in the same round. Only ratios are compared, never
absolute times. The server runs in a child process (the shipped ``python -m
airflow_provider_tamtam.testing.fake_server``) so that its handler threads do not compete with the
measured client for this process's GIL.

Also measured: the import cost of ``airflow_provider_tamtam`` (which must not import Airflow) and of
``airflow_provider_tamtam.hooks.tamtam`` (which imports Airflow), each the median of fresh subprocesses.

Bar: TamtamHook <= 1.15x raw requests, and TamtamHook faster than HttpHook. A miss prints MISS but does
not fail the script; only a functional failure (a call erroring or returning the wrong body) exits 1.

Run: ``.venv/bin/python bench/hook_overhead.py [--rounds 5] [--calls 100]``
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from _support import (
    API_KEY,
    define_connection,
    define_tamtam_connection,
    fake_server_process,
    request_log,
    use_throwaway_airflow_home,
)

use_throwaway_airflow_home()  # before anything imports Airflow

TAMTAM_CONN_ID = "tamtam_bench"
HTTP_CONN_ID = "http_bench"
CREDIT_TYPE = "MaxKeyAccountsUnlocked"
RATIO_BAR = 1.15
IMPORT_RUNS = 5


def define_connections(base_url: str) -> None:
    """Both connections as ``AIRFLOW_CONN_*`` variables; HttpHook then hits ``http://127.0.0.1:P/api/...``."""
    port = int(base_url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    define_tamtam_connection(TAMTAM_CONN_ID, base_url)
    define_connection(HTTP_CONN_ID, conn_type="http", host="127.0.0.1", port=port, schema="http")


def build_contenders(base_url: str) -> dict[str, Callable[[], None]]:
    """One zero-argument call per contender; each checks its answer and raises if it is wrong."""
    import requests
    from airflow.providers.http.hooks.http import HttpHook

    from airflow_provider_tamtam.hooks.tamtam import TamtamHook

    credits_url = base_url + "/v2/credits"
    headers = {"Authorization": API_KEY}
    session = requests.Session()
    tamtam_hook = TamtamHook(TAMTAM_CONN_ID)
    http_hook = HttpHook(method="GET", http_conn_id=HTTP_CONN_ID)

    def raw() -> None:
        body = session.get(credits_url, headers=headers).json()
        if body["credits"][0]["credit_type"] != CREDIT_TYPE:
            raise RuntimeError(f"raw requests: unexpected body {body!r}")

    def tamtam() -> None:
        lines = tamtam_hook.get_credits()
        if not lines or lines[0].credit_type != CREDIT_TYPE:
            raise RuntimeError(f"TamtamHook: unexpected lines {lines!r}")

    def http() -> None:
        response = http_hook.run("api/v2/credits", headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"HttpHook: HTTP {response.status_code} from {response.url}")
        body = response.json()
        if body["credits"][0]["credit_type"] != CREDIT_TYPE:
            raise RuntimeError(f"HttpHook: unexpected body {body!r}")

    return {"raw requests": raw, "TamtamHook": tamtam, "HttpHook": http}


def measure(
    contenders: dict[str, Callable[[], None]], rounds: int, calls: int
) -> dict[str, list[list[float]]]:
    """Per-call seconds, per contender and round; contenders alternate, the order rotating every round."""
    names = list(contenders)
    for call in contenders.values():  # warm up: connection pools, lazy imports, first connection lookup
        for _ in range(max(10, calls // 5)):
            call()
    samples: dict[str, list[list[float]]] = {name: [] for name in names}
    for round_number in range(rounds):
        shift = round_number % len(names)
        order = names[shift:] + names[:shift]
        if round_number % 2:
            order.reverse()
        for name in order:
            call = contenders[name]
            times: list[float] = []
            gc.collect()
            for _ in range(calls):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
            samples[name].append(times)
    return samples


def import_seconds(statement: str) -> tuple[float, bool]:
    """Median time of an import statement in fresh interpreters, and whether it pulled in Airflow."""
    code = (
        "import sys, time\n"
        "start = time.perf_counter()\n"
        f"{statement}\n"
        "elapsed = time.perf_counter() - start\n"
        "print(elapsed, 'airflow' in sys.modules)\n"
    )
    timings: list[float] = []
    imports_airflow = False
    for run in range(IMPORT_RUNS + 1):
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ.copy()
        )
        elapsed, airflow_loaded = result.stdout.split()
        imports_airflow = airflow_loaded == "True"
        if run:  # the first run warms the OS page cache and writes any missing .pyc files
            timings.append(float(elapsed))
    return statistics.median(timings), imports_airflow


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=100, help="calls per contender per round")
    args = parser.parse_args()

    with fake_server_process(latency=0.0) as base_url:
        define_connections(base_url)
        contenders = build_contenders(base_url)
        before, _ = request_log(base_url)
        try:
            samples = measure(contenders, args.rounds, args.calls)
        except Exception as exc:
            print(f"FAILED: a call went wrong: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        received = request_log(base_url)[0] - before
    expected = len(contenders) * (args.rounds * args.calls + max(10, args.calls // 5))
    if received != expected:
        print(f"FAILED: server saw {received} credits requests, expected {expected}", file=sys.stderr)
        return 1

    raw_medians = [statistics.median(times) for times in samples["raw requests"]]
    print(
        f"## Per-call cost, {args.rounds} rounds x {args.calls} sequential calls per contender "
        "(local FakeTamtamServer, latency 0)\n"
    )
    print("| contender | median µs/call | p90 µs/call | ratio vs raw requests (median of rounds) |")
    print("|---|---:|---:|---:|")
    ratios: dict[str, float] = {}
    for name, rounds in samples.items():
        flat = sorted(t for times in rounds for t in times)
        ratio = statistics.median(
            statistics.median(times) / raw for times, raw in zip(rounds, raw_medians, strict=True)
        )
        ratios[name] = ratio
        p90 = flat[int(0.9 * (len(flat) - 1))]
        print(f"| {name} | {statistics.median(flat) * 1e6:.0f} | {p90 * 1e6:.0f} | {ratio:.3f}x |")
    print()
    print(
        f"Bar: TamtamHook <= {RATIO_BAR:.2f}x raw requests: {ratios['TamtamHook']:.3f}x "
        f"-> {verdict(ratios['TamtamHook'] <= RATIO_BAR)}"
    )
    print(
        f"Bar: TamtamHook faster than HttpHook: {ratios['TamtamHook']:.3f}x vs {ratios['HttpHook']:.3f}x "
        f"-> {verdict(ratios['TamtamHook'] < ratios['HttpHook'])}"
    )
    print()

    print(f"## Import cost, median of {IMPORT_RUNS} fresh interpreters\n")
    print("| import | median ms | imports Airflow |")
    print("|---|---:|---|")
    statements = (
        "import airflow_provider_tamtam",
        "import airflow_provider_tamtam.hooks.tamtam",
        "from airflow.sdk import BaseHook",
    )
    timings = {statement: import_seconds(statement) for statement in statements}
    for statement, (seconds, imports_airflow) in timings.items():
        print(f"| `{statement}` | {seconds * 1e3:.1f} | {'yes' if imports_airflow else 'no'} |")
    print()
    print(
        "The hooks module imports Airflow (`from airflow.sdk import BaseHook`, shown for reference), so its "
        "cost is Airflow's own: the two differ by less than the machine's run-to-run noise. The top-level "
        "package must stay Airflow-free because provider discovery imports it in every Airflow process."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
