"""TamtamCreditsSensor: hold a DAG back until the account has enough credits of one type."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, Context, PokeReturnValue

from airflow_provider_tamtam._compat import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    conf,
)
from airflow_provider_tamtam.client import RetryPolicy
from airflow_provider_tamtam.exceptions import (
    TamtamConfigError,
    TamtamError,
    no_task_retry_for_permanent_errors,
)
from airflow_provider_tamtam.hooks.tamtam import TamtamHook
from airflow_provider_tamtam.models import CreditSummary
from airflow_provider_tamtam.triggers.tamtam import TamtamCreditsTrigger

DEFAULT_RESERVATION_TIMEOUT = 3600.0


def _whole_number(value: Any) -> int | None:
    """An int from an int or a rendered template string; None for anything else (bools, floats, junk)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _positive_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


class TamtamCreditsSensor(BaseSensorOperator):
    """Wait until the remaining credits of ``credit_type``, summed over all its lines, reach ``min_credits``.

    Works in ``poke``, ``reschedule`` and deferrable mode; deferred sensors on one connection share one
    request per poll interval in the triggerer. A bad argument, a wrong key or any other non-retryable error
    fails the task at once, without task retries, in every mode; transient errors are retried inside the
    hook first, never past ``timeout``. The XCom return value is the matching credit lines as dicts.

    With ``credits_needed`` the gate also reserves what the run will spend, so that many runs waiting at
    once are admitted only as far as the balance covers them all (``airflow_provider_tamtam.reservations``).
    Reservations live in the triggerer, so this needs ``deferrable=True``; the worker then makes no API call
    at all: it checks the connection locally and defers at once.

    :param credit_type: the credit type to check, e.g. ``MaxKeyAccountsUnlocked`` (templated).
    :param min_credits: remaining credits needed: a floor, kept on top of ``credits_needed`` (templated).
    :param credits_needed: credits the run will spend (int >= 1, templated). The gate opens when
        ``remaining - reserved >= min_credits + credits_needed``, first come first served among the gates
        of the same connection and credit type, and reserves them until the spending shows.
    :param reservation_timeout: how long an admitted run's reservation is held if its spending never shows:
        seconds or a timedelta (templated).
    :param tamtam_conn_id: the Tamtam connection (templated).
    :param deferrable: wait in the triggerer instead of holding a worker slot.
    """

    template_fields: Sequence[str] = (
        "credit_type",
        "min_credits",
        "credits_needed",
        "reservation_timeout",
        "tamtam_conn_id",
    )
    ui_color = "#f4e2c6"

    def __init__(
        self,
        *,
        credit_type: str,
        min_credits: int = 0,
        credits_needed: int | None = None,
        reservation_timeout: float | timedelta = DEFAULT_RESERVATION_TIMEOUT,
        tamtam_conn_id: str = TamtamHook.default_conn_name,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.credit_type = credit_type
        self.min_credits = min_credits
        self.credits_needed = credits_needed
        self.reservation_timeout = reservation_timeout
        self.tamtam_conn_id = tamtam_conn_id
        self.deferrable = deferrable
        self._first_poke: float | None = None

    def execute(self, context: Context) -> Any:
        self._check_arguments()
        if self.credits_needed is not None:
            # Reservations are made in the triggerer: check the connection here without a request, then defer
            # at once, so that any number of runs starting together cost one API call, not one each.
            with no_task_retry_for_permanent_errors():
                TamtamHook(self.tamtam_conn_id).get_conn()
            self._defer(time.time(), not_before=None)
        if not self.deferrable:
            return super().execute(context)
        # One synchronous check first: it fails fast on a bad connection and skips deferring when already met.
        # The trigger never acts on an answer to a request sent before it (wall clock: another process).
        checked_at = time.time()
        try:
            result = self.poke(context)
        except TamtamError as exc:  # transient, and outlasted the hook's retries: the trigger keeps trying
            self.log.warning("Tamtam credits check failed (%s); waiting in the triggerer", exc)
        else:
            if result.is_done:
                return result.xcom_value
        self._defer(checked_at, not_before=checked_at)

    def _defer(self, started_at: float, *, not_before: float | None) -> None:
        self.defer(
            trigger=TamtamCreditsTrigger(
                credit_type=self.credit_type,
                min_credits=self.min_credits,
                tamtam_conn_id=self.tamtam_conn_id,
                poll_interval=self.poke_interval,
                end_time=started_at + self.timeout,
                not_before=not_before,
                credits_needed=self.credits_needed,
                reservation_timeout=_seconds(self.reservation_timeout),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + self.poke_interval),
        )

    def poke(self, context: Context) -> PokeReturnValue:
        # retries of one check never outlast the sensor's own timeout
        policy = RetryPolicy(deadline=min(RetryPolicy.deadline, float(self.timeout)))
        with no_task_retry_for_permanent_errors():
            lines = TamtamHook(self.tamtam_conn_id, retry_policy=policy).get_credits()
        summary = CreditSummary.of(lines, self.credit_type)
        self.log.info(
            "Tamtam credits %s: %d remaining, %d needed%s; waited %s",
            self.credit_type,
            summary.remaining,
            self.min_credits,
            summary.describe_absence(),
            self._waited(context),
        )
        return PokeReturnValue(is_done=summary.remaining >= self.min_credits, xcom_value=summary.line_dicts())

    def execute_complete(self, context: Context, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Turn the trigger's event into the task's result (resumed on a worker)."""
        self._check_arguments()  # a resumed task renders its templates afresh
        status = event.get("status")
        if status == "success":
            self.log.info(
                "Tamtam credits %s: %d remaining, %d needed; done%s",
                self.credit_type,
                event["remaining"],
                self.min_credits + (self.credits_needed or 0),
                f"; {event['reserved']} reserved for this run" if event.get("reserved") else "",
            )
            return list(event["lines"])
        if status == "timeout":
            if self.soft_fail:
                raise AirflowSkipException(event["message"])
            raise AirflowSensorTimeout(event["message"])
        if status == "error" and event.get("retryable"):
            raise TamtamError(event["message"])
        raise AirflowFailException(
            event.get("message", f"Unexpected event from the Tamtam trigger: {event!r}")
        )

    def _check_arguments(self) -> None:
        """Reject bad templated values with one message before any request, failing without task retries."""
        with no_task_retry_for_permanent_errors():
            self._check_templated_values()

    def _check_templated_values(self) -> None:
        if not isinstance(self.credit_type, str) or not self.credit_type.strip():
            raise TamtamConfigError(f"credit_type must be a non-empty string, got {self.credit_type!r}")
        try:
            min_credits = int(str(self.min_credits).strip())
        except ValueError:
            raise TamtamConfigError(f"min_credits must be a whole number, got {self.min_credits!r}") from None
        if isinstance(self.min_credits, bool) or min_credits < 0:
            raise TamtamConfigError(f"min_credits must be a whole number >= 0, got {self.min_credits!r}")
        self.min_credits = min_credits
        self._check_reservation_arguments()

    def _check_reservation_arguments(self) -> None:
        if self.credits_needed is None:
            return
        where = f"TamtamCreditsSensor {self.task_id!r}"
        if not self.deferrable:
            raise TamtamConfigError(
                f"{where}: credits_needed needs deferrable=True; reservations are kept in the triggerer, "
                "where every waiting gate meets"
            )
        needed = _whole_number(self.credits_needed)
        if needed is None or needed < 1:
            raise TamtamConfigError(
                f"{where}: credits_needed must be a whole number >= 1, got {self.credits_needed!r}"
            )
        self.credits_needed = needed
        timeout = self.reservation_timeout
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else _positive_number(timeout)
        if seconds is None or seconds <= 0:
            raise TamtamConfigError(
                f"{where}: reservation_timeout must be a positive number of seconds or a timedelta, "
                f"got {timeout!r}"
            )
        self.reservation_timeout = seconds

    def _waited(self, context: Context) -> timedelta:
        """Time since the first check, across reschedules when Airflow knows it."""
        first = None
        if self.reschedule:
            ti: Any = context["ti"]
            first = ti.get_first_reschedule_date(context)
            if isinstance(first, str):  # Airflow 3.1 hands back the ISO string
                first = datetime.fromisoformat(first)
        if first is not None:
            return timedelta(seconds=round((ti.start_date - first).total_seconds()))
        if self._first_poke is None:
            self._first_poke = time.monotonic()
        return timedelta(seconds=round(time.monotonic() - self._first_poke))
