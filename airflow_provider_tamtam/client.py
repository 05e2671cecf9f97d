"""The one request/validate/retry path behind both ``TamtamHook.get_credits`` and ``aget_credits``.

The sync call runs tenacity's ``Retrying`` around one attempt; the async call runs tenacity's
``AsyncRetrying`` (which sleeps with ``asyncio.sleep``) around the *same* attempt executed in a worker thread,
so the two can never drift apart and the event loop never blocks on I/O.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import ipaddress
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import requests
from pydantic import ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from airflow_provider_tamtam import DEFAULT_BASE_URL, __version__
from airflow_provider_tamtam.exceptions import (
    TamtamAPIError,
    TamtamAuthError,
    TamtamConfigError,
    TamtamConnectionError,
    TamtamError,
    TamtamResponseError,
)
from airflow_provider_tamtam.models import CreditLine, CreditsResponse, Problem, describe_validation_error

CREDITS_PATH = "/v2/credits"
SNIPPET_LENGTH = 160
#: Threads for async requests; with the shared polls one request per connection is in flight at a time.
REQUEST_THREADS = 4


@functools.cache
def _request_threads() -> ThreadPoolExecutor:
    """Threads for async callers' requests, kept apart from the event loop's default pool.

    A request stuck until its timeout (or retried until the deadline) then holds one of these, never a
    thread that other triggers, or the loop's own DNS look-ups, depend on.
    """
    return ThreadPoolExecutor(max_workers=REQUEST_THREADS, thread_name_prefix="tamtam-request")


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait between retries, and for how long to keep trying at all.

    Waits grow as ``initial_wait * 2**n`` plus up to ``initial_wait`` of jitter, capped at ``max_wait``; a
    server's ``Retry-After`` replaces that wait (capped at ``retry_after_cap``). No retry starts if its wait
    would end past ``deadline`` seconds after the first attempt.
    """

    initial_wait: float = 1.0
    max_wait: float = 30.0
    deadline: float = 120.0
    retry_after_cap: float = 60.0


class _AuthorizationHeader(requests.auth.AuthBase):
    """Sets the Authorization header per request; its repr never shows the value.

    Passing auth this way (not as a plain header) also stops requests from swapping in ``~/.netrc``
    credentials, and requests drops it on a redirect to another host.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._value
        return request

    def __repr__(self) -> str:
        return "<Authorization: redacted>"


def normalize_base_url(
    host: str | None, *, port: int | None = None, path: str | None = None, allow_insecure_http: bool = False
) -> str:
    """Turn a connection's host into the API base URL, refusing ones that would leak the credential.

    Empty means the public API; a bare hostname gets ``https://``; plain ``http://`` is allowed only to a
    loopback host unless ``allow_insecure_http`` is set. ``port`` and ``path`` come from a connection URI
    such as ``tamtam://:KEY@api.example.com:8443/api``, which Airflow splits into host, port and schema.
    """
    raw = (host or "").strip()
    if not raw:
        return DEFAULT_BASE_URL
    url = raw if "://" in raw else f"https://{raw}"
    parts = urlsplit(url)
    if port and parts.port is None:
        parts = parts._replace(netloc=f"{parts.netloc}:{port}")
    if path and path.strip("/"):
        parts = parts._replace(path=f"{parts.path.rstrip('/')}/{path.strip('/')}")
    url = parts.geturl()
    if parts.scheme not in ("http", "https"):
        raise TamtamConfigError(
            f"Tamtam base URL must start with https:// or http://, got scheme {parts.scheme!r}"
        )
    if not parts.hostname:
        raise TamtamConfigError(f"Tamtam base URL {raw!r} has no host name")
    if parts.username or parts.password:
        raise TamtamConfigError(
            "Tamtam base URL must not hold a user name or password: put the credential in the password field"
        )
    if parts.query or parts.fragment:
        raise TamtamConfigError("Tamtam base URL must not have a query string or fragment")
    if parts.scheme == "http" and not allow_insecure_http and not _is_loopback(parts.hostname):
        raise TamtamConfigError(
            f"Refusing plain http:// to {parts.hostname}: the credential would travel unencrypted. "
            "Use https://, or set extra allow_insecure_http=true if you really mean it"
        )
    return url.rstrip("/")


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def parse_retry_after(value: str | None) -> float | None:
    """Read ``Retry-After`` given as delay-seconds or as an HTTP date; None when absent or garbled."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _snippet(text: str) -> str:
    """A short, single-line excerpt of an unexpected body (an HTML error page, say), tags removed."""
    flat = " ".join(re.sub(r"<[^>]*>", " ", text).split())
    return flat if len(flat) <= SNIPPET_LENGTH else flat[: SNIPPET_LENGTH - 1] + "…"


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, TamtamError) and exc.retryable


class TamtamClient:
    """Calls ``GET /v2/credits`` over one reused ``requests.Session``, with validation and retries."""

    def __init__(
        self,
        base_url: str,
        authorization: str,
        *,
        timeout: float = 30.0,
        max_retries: int = 5,
        retry_policy: RetryPolicy | None = None,
        logger: logging.Logger | Any | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + CREDITS_PATH
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_policy = retry_policy or RetryPolicy()
        self.log = logger or logging.getLogger(__name__)
        self._auth = _AuthorizationHeader(authorization)
        self._session = requests.Session()
        self._session.max_redirects = 5
        self._session.headers.update(
            {
                "Accept": "application/json, application/problem+json",
                "User-Agent": f"airflow-provider-tamtam/{__version__}",
            }
        )
        self._backoff = wait_exponential_jitter(
            initial=self.retry_policy.initial_wait,
            max=self.retry_policy.max_wait,
            jitter=self.retry_policy.initial_wait,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r})"

    def close(self) -> None:
        """Release the pooled connections."""
        self._session.close()

    def get_credits(self) -> list[CreditLine]:
        """Fetch and validate the credit lines, retrying transient failures."""
        result: list[CreditLine] = Retrying(**self._retry_args())(self._attempt)
        return result

    async def aget_credits(self) -> list[CreditLine]:
        """Same as :meth:`get_credits`; the request runs in a thread and retry waits use ``asyncio.sleep``."""
        result: list[CreditLine] = await AsyncRetrying(**self._retry_args())(self._attempt_in_thread)
        return result

    async def _attempt_in_thread(self) -> list[CreditLine]:
        return await asyncio.get_running_loop().run_in_executor(_request_threads(), self._attempt)

    def _retry_args(self) -> dict[str, Any]:
        return {
            "retry": retry_if_exception(_is_retryable),
            "stop": stop_after_attempt(self.max_retries + 1) | stop_before_delay(self.retry_policy.deadline),
            "wait": self._wait,
            "before_sleep": self._log_retry,
            "reraise": True,
        }

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hint = getattr(exc, "retry_after", None)
        if hint is not None:
            return float(min(hint, self.retry_policy.retry_after_cap))
        return float(self._backoff(state))

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        cause = exc.__cause__ if exc is not None and exc.__cause__ is not None else exc
        reason = f"HTTP {exc.status}" if isinstance(exc, TamtamAPIError) else type(cause).__name__
        wait = state.next_action.sleep if state.next_action else 0.0
        self.log.warning(
            "Tamtam GET %s attempt %d/%d failed (%s); retrying in %.2f s",
            CREDITS_PATH,
            state.attempt_number,
            self.max_retries + 1,
            reason,
            wait,
        )

    def _attempt(self) -> list[CreditLine]:
        """Send one request and turn the answer into credit lines or a precise exception."""
        try:
            response = self._session.get(self.url, auth=self._auth, timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            if isinstance(exc, requests.exceptions.SSLError):
                raise TamtamConfigError(f"TLS handshake with {self.url} failed: {exc}") from exc
            raise TamtamConnectionError(
                f"Could not reach Tamtam at {self.url}: {type(exc).__name__}"
            ) from exc
        except requests.RequestException as exc:
            raise TamtamError(f"Request to Tamtam at {self.url} failed: {type(exc).__name__}: {exc}") from exc
        if not 200 <= response.status_code < 300:
            raise self._api_error(response)
        try:
            body = CreditsResponse.model_validate_json(response.content)
        except ValidationError as exc:
            if any(err["type"] == "json_invalid" for err in exc.errors()):
                raise TamtamResponseError(
                    f"Tamtam answered HTTP {response.status_code} from {self.url} with a body that is not "
                    f"JSON (Content-Type {response.headers.get('Content-Type')!r}): "
                    f"{_snippet(response.text)!r}"
                ) from None
            raise TamtamResponseError(
                f"Tamtam answered HTTP {response.status_code} from {self.url} with a body that breaks the "
                f"contract: {describe_validation_error(exc)}"
            ) from None
        return list(body.credits or ())

    def _api_error(self, response: requests.Response) -> TamtamAPIError:
        status = response.status_code
        problem = None
        if "problem+json" in response.headers.get("Content-Type", ""):
            try:
                problem = Problem.model_validate_json(response.content)
            except ValidationError:
                problem = None
        reason = problem.summary() if problem else _snippet(response.text)
        message = (
            f"Tamtam API answered HTTP {status} {response.reason or ''}".rstrip() + f" for GET {self.url}"
        )
        if reason:
            message += f": {reason}"
        if status in (401, 403):
            message += " (check the API key or token in the connection's password and its auth_type)"
        error_class = TamtamAuthError if status in (401, 403) else TamtamAPIError
        return error_class(
            message,
            status=status,
            problem=problem,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
