"""Faults the fake Tamtam server can serve instead of a normal answer, and the problem documents it sends.

A fault answers one credits request: an error status (with ``Retry-After``, a problem body or any raw
body), a slow answer, a dropped connection, a malformed body or a redirect. ``fault_from_dict`` reads the
JSON form the control API accepts.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final, TypeAlias

__all__ = [
    "JSON",
    "PROBLEM_JSON",
    "DelayFault",
    "DropFault",
    "Fault",
    "StatusFault",
    "delay_fault",
    "drop_fault",
    "expect_type",
    "fault_from_dict",
    "http_date",
    "malformed_fault",
    "problem_body",
    "redirect_fault",
    "status_fault",
]

PROBLEM_JSON: Final = "application/problem+json"
JSON: Final = "application/json"


@dataclass(frozen=True)
class StatusFault:
    """Answer one request with this status, headers and body instead of the normal response."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DelayFault:
    """Wait ``seconds`` before answering one request normally, e.g. to run past a client read timeout."""

    seconds: float


@dataclass(frozen=True)
class DropFault:
    """Close the connection of one request without sending any response."""


Fault: TypeAlias = StatusFault | DelayFault | DropFault


def problem_body(status: int, detail: str | None = None) -> dict[str, object]:
    """Build an RFC 9457 problem document for ``status`` with the standard reason phrase as title."""
    try:
        known = HTTPStatus(status)
        title, description = known.phrase, known.description
    except ValueError:
        title, description = "Error", ""
    return {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": description if detail is None else detail,
    }


def _check_status(status: int, low: int = 200, high: int = 599) -> None:
    if isinstance(status, bool) or not isinstance(status, int) or not low <= status <= high:
        raise ValueError(f"status must be an integer between {low} and {high}, got {status!r}")


def status_fault(
    status: int,
    *,
    retry_after: str | None = None,
    problem: Mapping[str, object] | None = None,
    body: bytes | None = None,
    content_type: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> StatusFault:
    """Answer ``status`` once.

    The body is ``problem`` (serialized as is), else the raw ``body``, else a standard problem document
    for the status. ``content_type`` defaults to ``application/problem+json``. ``retry_after`` is sent
    verbatim as ``Retry-After`` (delay seconds or an HTTP date, see :func:`http_date`).
    """
    _check_status(status)
    if problem is not None and body is not None:
        raise ValueError("pass either problem or body, not both")
    if body is None:
        body = json.dumps(dict(problem) if problem is not None else problem_body(status)).encode()
    extra = list((headers or {}).items())
    if any(name.lower() in ("content-length", "transfer-encoding", "connection") for name, _ in extra):
        raise ValueError("Content-Length, Transfer-Encoding and Connection are managed by the server")
    if retry_after is not None:
        extra.append(("Retry-After", retry_after))
    return StatusFault(status, body, content_type or PROBLEM_JSON, tuple(extra))


def delay_fault(seconds: float) -> DelayFault:
    """Answer once normally, but only after ``seconds``."""
    if seconds < 0:
        raise ValueError("seconds must not be negative")
    return DelayFault(float(seconds))


def drop_fault() -> DropFault:
    """Close the connection once without answering."""
    return DropFault()


def malformed_fault(body: bytes, status: int = 200, content_type: str = JSON) -> StatusFault:
    """Answer once with this raw body (invalid JSON, wrong types, missing fields...)."""
    _check_status(status)
    return StatusFault(status, body, content_type)


def redirect_fault(location: str, status: int = 302) -> StatusFault:
    """Answer once with a redirect to ``location`` and an empty body."""
    _check_status(status, 300, 399)
    return StatusFault(status, b"", None, (("Location", location),))


def http_date(offset_seconds: float = 0.0) -> str:
    """Format now plus ``offset_seconds`` as an HTTP date, e.g. for a date-valued ``Retry-After``."""
    return email.utils.formatdate(time.time() + offset_seconds, usegmt=True)


def expect_type(value: object, kind: type | tuple[type, ...], what: str) -> Any:
    """Return ``value`` if it is a ``kind`` (a bool is never an int here), else raise ``ValueError``."""
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ValueError(f"{what} has the wrong type: {type(value).__name__}")
    return value


def fault_from_dict(spec: Mapping[str, object]) -> Fault:
    """Build a fault from its JSON form, as accepted by ``POST /_fake/faults``.

    ``{"drop": true}``, ``{"delay": 2}``, ``{"redirect": "http://...", "status": 307}``,
    ``{"body": "not json", "status": 200, "content_type": "text/plain"}`` or
    ``{"status": 503, "retry_after": "1", "problem": {...}, "headers": {...}}``.
    """
    keys = set(spec)
    if "drop" in spec:
        if keys != {"drop"} or spec["drop"] is not True:
            raise ValueError('a drop fault is exactly {"drop": true}')
        return drop_fault()
    if "delay" in spec:
        if keys != {"delay"}:
            raise ValueError('a delay fault is exactly {"delay": <seconds>}')
        return delay_fault(expect_type(spec["delay"], (int, float), "delay"))
    status = spec.get("status")
    if "redirect" in spec:
        if not keys <= {"redirect", "status"}:
            raise ValueError("a redirect fault only takes redirect and status")
        location = expect_type(spec["redirect"], str, "redirect")
        return redirect_fault(location, expect_type(302 if status is None else status, int, "status"))
    if "body" in spec:
        if not keys <= {"body", "status", "content_type"}:
            raise ValueError("a body fault only takes body, status and content_type")
        return malformed_fault(
            expect_type(spec["body"], str, "body").encode(),
            expect_type(200 if status is None else status, int, "status"),
            expect_type(spec.get("content_type", JSON), str, "content_type"),
        )
    if not keys <= {"status", "retry_after", "problem", "headers", "content_type"} or status is None:
        raise ValueError(f"unknown fault: {sorted(keys)}")
    retry_after = spec.get("retry_after")
    if retry_after is not None:
        retry_after = str(expect_type(retry_after, (str, int, float), "retry_after"))
    problem = spec.get("problem")
    content_type = spec.get("content_type")
    headers = expect_type(spec.get("headers", {}), dict, "headers")
    return status_fault(
        expect_type(status, int, "status"),
        retry_after=retry_after,
        problem=None if problem is None else expect_type(problem, dict, "problem"),
        content_type=None if content_type is None else expect_type(content_type, str, "content_type"),
        headers={str(name): expect_type(value, str, "header value") for name, value in headers.items()},
    )
