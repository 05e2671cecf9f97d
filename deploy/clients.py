"""HTTP clients of the live check: Airflow's REST API, the fake Tamtam API's control API, and call rates."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import requests

from deploy.report import CheckFailed

RATE_BAR = "[bar: mean <= 1.5, max <= 2]"


class AirflowApi:
    """Tiny client for the api-server's public REST API (``/api/v2``) with a simple-auth-manager JWT."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()

    def login(self) -> None:
        """With ``simple_auth_manager_all_admins``, ``GET /auth/token`` hands out an admin token."""
        response = self.session.get(f"{self.base_url}/auth/token", timeout=30)
        response.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def call(self, method: str, path: str, body: Any = None, ok: Sequence[int] = (200,)) -> Any:
        """``method`` on ``/api/v2{path}``; the decoded JSON answer, or ``CheckFailed`` for another status."""
        response = self.session.request(method, f"{self.base_url}/api/v2{path}", json=body, timeout=60)
        if response.status_code not in ok:
            raise CheckFailed(
                f"{method} /api/v2{path} answered {response.status_code}: {response.text[:300]}"
            )
        return response.json() if response.content else None


class FakeApi:
    """The fake Tamtam server's control API (``/_fake/``)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.origin = base_url.rsplit("/", 1)[0]

    def credit_calls(self) -> list[float]:
        """Arrival times (epoch seconds) of every credits request since the last reset."""
        response = requests.get(f"{self.origin}/_fake/requests", timeout=10)
        response.raise_for_status()
        return sorted(
            r["wall_time"] for r in response.json()["requests"] if r["path"].endswith("/v2/credits")
        )

    def reset(self) -> None:
        """Forget the requests logged so far."""
        requests.delete(f"{self.origin}/_fake/requests", timeout=10).raise_for_status()

    def set_credits(self, credits: list[dict[str, Any]]) -> None:
        """Answer with these credit lines from now on."""
        requests.put(f"{self.origin}/_fake/credits", json={"credits": credits}, timeout=10).raise_for_status()


def epoch(value: str) -> float:
    """Epoch seconds of an ISO 8601 timestamp from the REST API."""
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@dataclass
class Rate:
    """Credits calls in a time window, counted per whole poll interval (a trailing partial one is dropped)."""

    start: float
    end: float
    interval: float
    times: list[float]

    @property
    def buckets(self) -> list[int]:
        count = int((self.end - self.start) // self.interval)
        edges = [self.start + i * self.interval for i in range(count + 1)]
        return [sum(1 for t in self.times if low <= t < high) for low, high in itertools.pairwise(edges)]

    @property
    def mean(self) -> float:
        buckets = self.buckets
        return sum(buckets) / len(buckets) if buckets else float("nan")

    def passes(self, mean_bar: float = 1.5, max_bar: int = 2) -> bool:
        buckets = self.buckets
        return bool(buckets) and self.mean <= mean_bar and max(buckets) <= max_bar

    def describe(self) -> str:
        buckets = self.buckets
        return (
            f"{self.mean:.2f} calls per {self.interval:g}-s interval, max {max(buckets, default=0)} "
            f"({sum(buckets)} calls in {len(buckets)} intervals: {' '.join(map(str, buckets))}) {RATE_BAR}"
        )
