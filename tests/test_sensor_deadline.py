"""The deferrable sensor's deadline holds while the Tamtam API hangs.

The trigger on a real event loop, and the sensor in a real Airflow (``dag.test()``, ``retries=2``), against a
fake server whose requests hang (``delay_fault``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_provider_tamtam.testing import FakeTamtamServer, credit_line, delay_fault, malformed_fault
from airflow_provider_tamtam.triggers.shared_poll import SharedCreditsPoll
from airflow_provider_tamtam.triggers.tamtam import TamtamCreditsTrigger
from tests.airflow_run import load_dag
from tests.trigger_run import first_event

DAGS = Path(__file__).parent / "dags" / "tamtam_test_fail_once_dags.py"
SHORT = [credit_line("Exports", used=9, total=10)]


async def test_the_trigger_times_out_on_time_without_cancelling_the_shared_request(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn(extra={"timeout": 30})
    fake_server.set_credits(SHORT)
    fake_server.add_faults(delay_fault(5))  # the API hangs for five seconds
    other_waiter = asyncio.ensure_future(SharedCreditsPoll.for_connection("tamtam_default").get_credits(60))
    end_time = time.time() + 1.5
    event = await first_event(TamtamCreditsTrigger("Exports", 5, poll_interval=0.2, end_time=end_time))
    late = time.time() - end_time
    assert event["status"] == "timeout"
    assert event["remaining"] is None
    assert "no answer from Tamtam in time" in event["message"]
    assert late < 1.0  # today this takes ~0.5 s; the hanging request takes 3.5 s more
    assert not other_waiter.done()  # the request it shares goes on for the other waiter ...
    lines = await asyncio.wait_for(other_waiter, 10)
    assert lines[0].remaining_credits == 1  # ... and answers it
    assert fake_server.request_count == 1


async def test_a_trigger_past_its_end_time_still_gets_one_quick_check(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    """After a triggerer restart past ``end_time``: one last look, as long as the API answers promptly."""
    tamtam_conn()
    fake_server.set_credits([credit_line("Exports", used=0, total=10)])
    event = await first_event(TamtamCreditsTrigger("Exports", 5, poll_interval=10, end_time=time.time() - 5))
    assert event["status"] == "success"


@pytest.fixture
def deadline_dags(
    airflow_db: Path,
    install_dag: Callable[[Path], Path],
    fake_server: FakeTamtamServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    monkeypatch.setenv("TAMTAM_TEST_OUT", str(tmp_path))
    return install_dag(DAGS)


@pytest.fixture
def hanging_after_first_check(
    deadline_dags: Path, tamtam_conn: Callable[..., str], fake_server: FakeTamtamServer
) -> Path:
    """The worker's check is answered (short of credits); every later request hangs past its timeout."""
    tamtam_conn(extra={"max_retries": 0, "timeout": 3})
    fake_server.add_faults(malformed_fault(json.dumps({"credits": SHORT}).encode()), *[delay_fault(8)] * 6)
    return deadline_dags


@pytest.mark.parametrize(
    ("dag_id", "state"),
    [("fail_once_sensor_deadline", "failed"), ("fail_once_sensor_deadline_soft_fail", "skipped")],
)
def test_the_sensor_times_out_instead_of_retrying_while_the_api_hangs(
    hanging_after_first_check: Path, capfd: pytest.CaptureFixture[str], dag_id: str, state: str
) -> None:
    dag_run = load_dag(hanging_after_first_check, dag_id).test()
    (ti,) = dag_run.get_task_instances()
    assert (str(ti.state), ti.try_number) == (state, 1)  # retries=2, yet one try
    if state == "failed":
        assert "Timed out waiting for 5 Exports credits" in capfd.readouterr().out


def test_the_sensor_times_out_once_when_even_its_first_check_hangs(
    deadline_dags: Path, tamtam_conn: Callable[..., str], fake_server: FakeTamtamServer
) -> None:
    tamtam_conn(extra={"timeout": 1})  # five retries by default: ~2 minutes of trying for each check
    fake_server.add_faults(*[delay_fault(3)] * 20)
    started = time.monotonic()
    dag_run = load_dag(deadline_dags, "fail_once_sensor_deadline").test()
    (ti,) = dag_run.get_task_instances()
    assert (str(ti.state), ti.try_number) == ("failed", 1)
    assert time.monotonic() - started < 30  # today ~5 s: the check's retries end at the sensor's timeout
