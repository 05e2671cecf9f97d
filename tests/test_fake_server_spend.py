"""Spending credits through FakeTamtamServer: oldest line first, never below zero, every attempt logged."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from airflow_provider_tamtam.testing import FakeTamtamServer, SpendRefused, credit_line

AUTH = {"Authorization": "test-api-key"}
LINES = [
    credit_line("Exports", used=8, total=10),
    credit_line("Imports", used=0, total=100),
    credit_line("Exports", used=0, total=5),
]


@pytest.fixture
def server() -> Iterator[FakeTamtamServer]:
    with FakeTamtamServer(LINES) as fake:
        yield fake


def served(server: FakeTamtamServer) -> object:
    response = requests.get(server.credits_url, headers=AUTH, timeout=5)
    assert response.status_code == 200
    return response.json()["credits"]


def test_spend_takes_from_the_oldest_line_first(server: FakeTamtamServer) -> None:
    assert server.spend("Exports", 3) == 4
    assert served(server) == [
        credit_line("Exports", used=10, total=10),
        credit_line("Imports", used=0, total=100),
        credit_line("Exports", used=1, total=5),
    ]
    assert server.spend("Exports", 4) == 0
    assert served(server) == [
        credit_line("Exports", used=10, total=10),
        credit_line("Imports", used=0, total=100),
        credit_line("Exports", used=5, total=5),
    ]
    assert [(s.credit_type, s.credits, s.accepted, s.remaining) for s in server.spends] == [
        ("Exports", 3, True, 4),
        ("Exports", 4, True, 0),
    ]


@pytest.mark.parametrize(("credit_type", "amount"), [("Exports", 8), ("Unknown", 1)])
def test_spend_below_zero_is_refused_and_changes_nothing(
    server: FakeTamtamServer, credit_type: str, amount: int
) -> None:
    with pytest.raises(SpendRefused, match=f"{credit_type} has"):
        server.spend(credit_type, amount)
    assert served(server) == LINES
    (spend,) = server.spends
    assert (spend.credit_type, spend.credits, spend.accepted) == (credit_type, amount, False)
    assert spend.remaining == (7 if credit_type == "Exports" else 0)


def test_spend_from_null_credits_is_refused() -> None:
    with FakeTamtamServer(None) as server:
        with pytest.raises(SpendRefused):
            server.spend("Exports", 1)
        assert served(server) is None


@pytest.mark.parametrize("amount", [0, -1, True, 1.5, "2"])
def test_spend_rejects_bad_amounts(server: FakeTamtamServer, amount: object) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        server.spend("Exports", amount)  # type: ignore[arg-type]
    assert server.spends == []
    assert served(server) == LINES


def test_spend_refuses_while_a_schedule_runs_and_follows_the_lasting_lines(server: FakeTamtamServer) -> None:
    server.schedule_credits([(1, None), (0, LINES)])
    with pytest.raises(ValueError, match="schedule"):
        server.spend("Exports", 1)
    assert served(server) is None
    assert server.spend("Imports", 40) == 60
    assert served(server)[1] == credit_line("Imports", used=40, total=100)  # type: ignore[index]


def test_set_credits_replaces_the_balance_but_keeps_the_log(server: FakeTamtamServer) -> None:
    server.spend("Exports", 1)
    server.set_credits([credit_line("Exports", used=0, total=2)])
    assert server.spend("Exports", 2) == 0
    assert [s.remaining for s in server.spends] == [6, 0]
    server.reset_spends()
    assert server.spends == []


def test_spend_through_the_control_api(server: FakeTamtamServer) -> None:
    url = f"{server.control_url}/spend"
    accepted = requests.post(url, json={"credit_type": "Exports", "credits": 5}, timeout=5)
    assert (accepted.status_code, accepted.json()) == (
        200,
        {"credit_type": "Exports", "credits": 5, "remaining": 2},
    )
    refused = requests.post(url, json={"credit_type": "Exports", "credits": 3}, timeout=5)
    assert refused.status_code == 409
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert refused.json()["detail"] == "Exports has 2 credits left, 3 asked for"
    log = requests.get(url, timeout=5).json()["spends"]
    assert [(s["credits"], s["accepted"], s["remaining"]) for s in log] == [(5, True, 2), (3, False, 2)]
    assert set(log[0]) == {"credit_type", "credits", "accepted", "remaining", "wall_time"}
    assert requests.delete(url, timeout=5).json() == {"spends": []}
    assert server.spends == []


@pytest.mark.parametrize(
    "payload",
    [
        {"credit_type": "Exports"},
        {"credit_type": "Exports", "credits": "2"},
        {"credit_type": "Exports", "credits": 0},
        {"credit_type": 7, "credits": 1},
        {"credit_type": "Exports", "credits": 1, "extra": True},
        [1, 2],
    ],
)
def test_control_api_rejects_bad_spends(server: FakeTamtamServer, payload: object) -> None:
    response = requests.post(f"{server.control_url}/spend", json=payload, timeout=5)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/problem+json"
    assert server.spends == []
    assert served(server) == LINES


def test_concurrent_spends_never_take_the_balance_below_zero(server: FakeTamtamServer) -> None:
    url = f"{server.control_url}/spend"

    def spend(_: int) -> int:
        return requests.post(url, json={"credit_type": "Exports", "credits": 2}, timeout=5).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(spend, range(8)))
    assert sorted(statuses) == [200] * 3 + [409] * 5  # 7 credits: three spends of 2, then 1 is left
    log = server.spends
    accepted = [s.remaining for s in log if s.accepted]
    assert accepted == [5, 3, 1]
    assert all(s.remaining >= 0 for s in log)
    assert {s.remaining for s in log if not s.accepted} == {1}
