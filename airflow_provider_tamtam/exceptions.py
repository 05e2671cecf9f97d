"""Exceptions raised by the Tamtam provider; messages never carry a credential."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

try:
    from airflow.sdk.exceptions import AirflowException, AirflowFailException
except ImportError:  # Airflow 3.1 keeps them in airflow.exceptions only.
    from airflow.exceptions import (  # type: ignore[no-redef,attr-defined]
        AirflowException,
        AirflowFailException,
    )

if TYPE_CHECKING:
    from airflow_provider_tamtam.models import Problem

#: Statuses worth retrying: the request may succeed unchanged a moment later.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class TamtamError(AirflowException):
    """Base class of every error raised by this provider."""

    #: Whether sending the same request again may succeed.
    retryable: bool = False


class TamtamConfigError(TamtamError, ValueError):
    """The connection or the arguments are unusable; raised before any request is sent."""


class TamtamConnectionError(TamtamError):
    """The API could not be reached (connection refused or dropped, timeout); retried by the hook."""

    retryable = True


class TamtamAPIError(TamtamError):
    """The API answered with an error status.

    ``problem`` is the parsed ``application/problem+json`` body, or None when the body was something else
    (an HTML page from a proxy, say). ``retry_after`` is the server's ``Retry-After`` hint in seconds.
    """

    def __init__(
        self, message: str, *, status: int, problem: Problem | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem
        self.retry_after = retry_after
        self.retryable = status in RETRYABLE_STATUSES


class TamtamAuthError(TamtamAPIError):
    """401 or 403: the key or token is wrong, expired or lacks access. Never retried."""


class TamtamResponseError(TamtamError):
    """An answer that cannot be used: a 2xx body that breaks the API contract (not JSON, a field missing or
    of the wrong type), a body over the size limit, a redirect that cannot be followed.

    ``status`` is the answer's HTTP status when there was one; the error is retryable when that status is.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = status in RETRYABLE_STATUSES


@contextmanager
def no_task_retry_for_permanent_errors() -> Iterator[None]:
    """Turn an error no retry can fix (a wrong key, a bad connection) into a task failure without retries.

    Transient errors pass through unchanged: the hook has already retried them, and Airflow's task retries
    may still help.
    """
    try:
        yield
    except TamtamError as exc:
        if exc.retryable:
            raise
        raise AirflowFailException(str(exc)) from exc
