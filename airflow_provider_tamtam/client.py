"""The one request/validate/retry path behind both ``TamtamHook.get_credits`` and ``aget_credits``.

The sync call runs tenacity's ``Retrying`` around one attempt; the async call runs tenacity's
``AsyncRetrying`` (which sleeps with ``asyncio.sleep``) around the *same* attempt executed in a worker thread,
so the two can never drift apart and the event loop never blocks on I/O.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple
from urllib.parse import urljoin, urlsplit

import requests
from pydantic import ValidationError
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from airflow_provider_tamtam import __version__
from airflow_provider_tamtam.attempt_deadline import AttemptDeadline, DeadlineAdapter, attempt_deadline
from airflow_provider_tamtam.base_url import AuthorizationHeader, NoAuthorization, normalize_base_url, origin
from airflow_provider_tamtam.exceptions import (
    TamtamAPIError,
    TamtamAuthError,
    TamtamConfigError,
    TamtamConnectionError,
    TamtamError,
    TamtamResponseError,
)
from airflow_provider_tamtam.models import CreditLine, CreditsResponse, Problem, describe_validation_error
from airflow_provider_tamtam.request_threads import REQUEST_THREADS, connection_key, request_threads
from airflow_provider_tamtam.server_text import Redactor, clip, credential_forms, redacting_logs, snippet

CREDITS_PATH = "/v2/credits"
#: Largest body read; the real answer is a few hundred bytes.
MAX_BODY_BYTES = 1 << 20
BODY_CHUNK = 16 * 1024
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
__all__ = ["REQUEST_THREADS", "RetryPolicy", "TamtamClient", "normalize_base_url", "parse_retry_after"]


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


class _Session(requests.Session):
    """A session that leaves redirects to the client, which follows them itself with bounded reads.

    With ``allow_redirects=False`` requests still prepares the next hop, reading the whole redirect body
    and parsing its ``Location`` (raising ``ValueError`` for a bad one) before the caller sees it.
    """

    def get_redirect_target(self, resp: requests.Response) -> None:
        return None


class _Answer(NamedTuple):
    status: int
    reason: str
    headers: CaseInsensitiveDict[str]
    body: bytes


def parse_retry_after(value: str | None) -> float | None:
    """Read ``Retry-After`` given as delay-seconds or as an HTTP date; None when absent or garbled."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # not str.isdigit() alone: it accepts "²", which float() refuses
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, TamtamError) and exc.retryable


class TamtamClient:
    """Calls ``GET /v2/credits`` over one reused ``requests.Session``, with validation and retries.

    Every answer is treated as untrusted: bodies are read up to :data:`MAX_BODY_BYTES`, one attempt
    (connect, redirects, headers and body) takes at most ``timeout`` seconds, the credential is removed
    from any server text that reaches an exception, and only :class:`TamtamError` subclasses leave.
    """

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
        if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0):
            raise TamtamConfigError(
                f"Tamtam timeout must be a finite positive number of seconds, got {timeout!r}"
            )
        self.url = base_url.rstrip("/") + CREDITS_PATH
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_policy = retry_policy or RetryPolicy()
        self.log = logger or logging.getLogger(__name__)
        self._auth = AuthorizationHeader(authorization)
        self._redact = Redactor(credential_forms(authorization))
        self._origin = origin(self.url)
        self._session = _Session()
        self._session.mount("http://", DeadlineAdapter())
        self._session.mount("https://", DeadlineAdapter())
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
        self._threads_key = connection_key(self.url, authorization)
        self._threads: tuple[int, ThreadPoolExecutor] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r})"

    def close(self) -> None:
        """Release the pooled connections, and this client's hold on the connection's request threads."""
        self._session.close()
        self._threads = None

    def get_credits(self) -> list[CreditLine]:
        """Fetch and validate the credit lines, retrying transient failures."""
        result: list[CreditLine] = Retrying(**self._retry_args())(self._attempt)
        return result

    async def aget_credits(self) -> list[CreditLine]:
        """Same as :meth:`get_credits`; the request runs in a thread and retry waits use ``asyncio.sleep``."""
        result: list[CreditLine] = await AsyncRetrying(**self._retry_args())(self._attempt_in_thread)
        return result

    async def _attempt_in_thread(self) -> list[CreditLine]:
        return await asyncio.get_running_loop().run_in_executor(self._request_threads(), self._attempt)

    def _request_threads(self) -> ThreadPoolExecutor:
        """The connection's own request threads (see :mod:`.request_threads`), looked up once per process."""
        if self._threads is None or self._threads[0] != os.getpid():
            self._threads = (os.getpid(), request_threads(self._threads_key))
        return self._threads[1]

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
        status = getattr(exc, "status", None)
        reason = f"HTTP {status}" if status is not None else type(cause).__name__
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
        """Send one request and turn the answer into credit lines or a precise, credential-free exception."""
        with attempt_deadline(self.timeout) as deadline, redacting_logs(self._redact):
            try:
                answer = self._exchange(deadline)
            except TamtamError:
                raise
            except Exception as exc:  # whatever the server made the HTTP stack raise: ours, never theirs
                raise self._transport_error(exc, deadline) from self._safe_cause(exc)
        if not 200 <= answer.status < 300:
            raise self._api_error(answer)
        try:
            body = CreditsResponse.model_validate_json(answer.body)
        except ValidationError as exc:
            if any(err["type"] == "json_invalid" for err in exc.errors()):
                content_type = clip(self._redact(answer.headers.get("Content-Type", "")), 80)
                raise TamtamResponseError(
                    f"Tamtam answered HTTP {answer.status} from {self.url} with a body that is not "
                    f"JSON (Content-Type {content_type!r}): {self._snippet(answer)!r}"
                ) from None
            raise TamtamResponseError(
                f"Tamtam answered HTTP {answer.status} from {self.url} with a body that breaks the "
                f"contract: {self._redact(describe_validation_error(exc))}"
            ) from None
        return list(body.credits or ())

    def _exchange(self, deadline: AttemptDeadline) -> _Answer:
        """GET the credits, following redirects by hand, and read the whole (bounded) body."""
        url = self.url
        for _ in range(MAX_REDIRECTS + 1):
            left = deadline.remaining()
            if left <= 0:
                raise self._expired()
            auth = self._auth if url == self.url or origin(url) == self._origin else NoAuthorization()
            response = self._session.get(
                url, auth=auth, timeout=(left, self.timeout), stream=True, allow_redirects=False
            )
            with closing(response):
                if response.status_code in REDIRECT_STATUSES and "Location" in response.headers:
                    url = self._redirect_target(url, response)
                    continue
                return _Answer(
                    response.status_code, response.reason or "", response.headers, self._read_body(response)
                )
        raise TamtamResponseError(f"Tamtam at {self.url} redirected more than {MAX_REDIRECTS} times")

    def _redirect_target(self, url: str, response: requests.Response) -> str:
        """Where a redirect points, refusing a URL that is unusable or that holds the credential."""
        location = response.headers["Location"]
        shown = clip(self._redact(location), 200)
        status = response.status_code
        if self._redact.finds(location):
            raise TamtamResponseError(
                f"Tamtam at {url} redirected to {shown}, a URL holding the credential; not followed",
                status=status,
            )
        try:
            target = urljoin(url, location.strip())
            parts = urlsplit(target)
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError as exc:
            raise TamtamResponseError(
                f"Tamtam at {url} redirected to an unusable URL {shown}: {clip(self._redact(str(exc)), 120)}",
                status=status,
            ) from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TamtamResponseError(
                f"Tamtam at {url} redirected to {shown}, not an http(s) URL with a host", status=status
            )
        return target

    def _read_body(self, response: requests.Response) -> bytes:
        """The body, read in chunks and refused once it passes :data:`MAX_BODY_BYTES`."""
        declared = response.headers.get("Content-Length", "").strip()
        if (
            declared.isascii()
            and declared.isdigit()
            and (len(declared) > 9 or int(declared) > MAX_BODY_BYTES)
        ):
            raise self._too_large(response.status_code)
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(BODY_CHUNK):
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise self._too_large(response.status_code)
                chunks.append(chunk)
        except requests.exceptions.ContentDecodingError:
            encoding = clip(self._redact(response.headers.get("Content-Encoding", "")), 40)
            raise TamtamResponseError(
                f"Tamtam answered HTTP {response.status_code} from {self.url} with a body that does not "
                f"decode as its Content-Encoding {encoding!r}",
                status=response.status_code,
            ) from None
        return b"".join(chunks)

    def _too_large(self, status: int) -> TamtamResponseError:
        return TamtamResponseError(
            f"Tamtam answered HTTP {status} from {self.url} with a body larger than "
            f"{MAX_BODY_BYTES // 1024} KiB, which is not read (a real answer is a few hundred bytes)",
            status=status,
        )

    def _expired(self) -> TamtamConnectionError:
        return TamtamConnectionError(
            f"Tamtam at {self.url} sent no complete answer within the timeout of {self.timeout:g} s"
        )

    def _transport_error(self, exc: Exception, deadline: AttemptDeadline) -> TamtamError:
        """Name what went wrong below HTTP; the details of foreign exceptions are redacted and clipped."""
        if deadline.expired:
            return self._expired()
        if isinstance(exc, requests.exceptions.SSLError):
            return TamtamConfigError(
                f"TLS handshake with {self.url} failed: {clip(self._redact(str(exc)), 300)}"
            )
        if isinstance(
            exc, requests.ConnectionError | requests.Timeout | requests.exceptions.ChunkedEncodingError
        ):
            return TamtamConnectionError(f"Could not reach Tamtam at {self.url}: {type(exc).__name__}")
        if isinstance(exc, OSError) and not isinstance(exc, requests.RequestException):
            return TamtamConnectionError(f"Could not reach Tamtam at {self.url}: {type(exc).__name__}")
        return TamtamResponseError(
            f"Request to Tamtam at {self.url} failed on what the server sent: "
            f"{type(exc).__name__}: {clip(self._redact(str(exc)), 200)}"
        )

    def _safe_cause(self, exc: BaseException) -> BaseException | None:
        """``exc`` to chain as the cause, or None when its chain repeats the credential."""
        link: BaseException | None = exc
        for _ in range(10):
            if link is None:
                return exc
            if self._redact.finds(str(link)) or self._redact.finds(repr(link.args)):
                return None
            link = link.__cause__ or link.__context__
        return None

    def _snippet(self, answer: _Answer) -> str:
        try:
            charset = get_encoding_from_headers(answer.headers)
        except Exception:  # a garbled Content-Type only costs the charset
            charset = None
        return snippet(answer.body, charset, self._redact)

    def _api_error(self, answer: _Answer) -> TamtamAPIError:
        status = answer.status
        problem = None
        if "problem+json" in answer.headers.get("Content-Type", ""):
            try:
                problem = Problem.model_validate_json(answer.body).redacted(self._redact.deep)
            except ValidationError:
                problem = None
        reason = clip(problem.summary(), 400) if problem else self._snippet(answer)
        phrase = clip(self._redact(answer.reason), 80)
        message = f"Tamtam API answered HTTP {status} {phrase}".rstrip() + f" for GET {self.url}"
        if reason:
            message += f": {reason}"
        if status in (401, 403):
            message += " (check the API key or token in the connection's password and its auth_type)"
        error_class = TamtamAuthError if status in (401, 403) else TamtamAPIError
        return error_class(
            self._redact(message),
            status=status,
            problem=problem,
            retry_after=parse_retry_after(answer.headers.get("Retry-After")),
        )
