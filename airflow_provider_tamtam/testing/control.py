"""The fake Tamtam server's control API under ``/_fake/``, which lets another process drive a running server.

=========================  =================================================================================
``GET|DELETE requests``    the request log (``DELETE`` clears it first)
``PUT credits``            ``{"credits": [...] | null}``: answer with these lines from now on
``POST faults``            one fault or a list of them, in the form ``fault_from_dict`` reads
``POST schedule``          ``{"steps": [[count, [...] | null], ...]}``: see ``schedule_credits``
``POST spend``             ``{"credit_type": T, "credits": N}``: spend, or 409 when T has fewer than N left
``GET|DELETE spend``       the spend log with the balance after each spend (``DELETE`` clears it first)
=========================  =================================================================================
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from airflow_provider_tamtam.testing.credit_lines import CreditLines, SpendRefused
from airflow_provider_tamtam.testing.faults import expect_type, fault_from_dict
from airflow_provider_tamtam.testing.transport import (
    CONTROL_PREFIX,
    Response,
    json_response,
    problem_response,
)

if TYPE_CHECKING:
    from airflow_provider_tamtam.testing.server import FakeTamtamServer

ROUTES: Final[dict[str, tuple[str, ...]]] = {
    "requests": ("GET", "DELETE"),
    "credits": ("PUT",),
    "faults": ("POST",),
    "schedule": ("POST",),
    "spend": ("GET", "POST", "DELETE"),
}
"""Control routes and the methods each accepts."""


def answer_control(fake: FakeTamtamServer, method: str, path: str, body: bytes) -> Response:
    """Answer a control API request (``/_fake/...``) by acting on ``fake``."""
    route = urlsplit(path).path[len(CONTROL_PREFIX) :].strip("/")
    if route not in ROUTES:
        return problem_response(404, f"No control route {route!r}")
    if method not in ROUTES[route]:
        response = problem_response(405, f"Method {method} is not allowed here")
        response.headers.append(("Allow", ", ".join(ROUTES[route])))
        return response
    if route == "requests":
        if method == "DELETE":
            fake.reset_requests()
        records = [
            {"method": r.method, "path": r.path, "status": r.status, "wall_time": r.wall_time}
            for r in fake.requests
        ]
        return json_response(200, {"count": fake.request_count, "requests": records})
    if route == "spend" and method != "POST":
        if method == "DELETE":
            fake.reset_spends()
        return json_response(200, {"spends": [spend.as_dict() for spend in fake.spends]})
    try:
        payload = json.loads(body or b"null")
        if route == "credits":
            credits = expect_type(payload, dict, "body")["credits"]
            fake.set_credits(expect_type(credits, list, "credits") if credits is not None else None)
            return json_response(200, {"credits": credits})
        if route == "faults":
            specs = [payload] if isinstance(payload, dict) else expect_type(payload, list, "body")
            faults = [fault_from_dict(expect_type(spec, dict, "fault")) for spec in specs]
            fake.add_faults(*faults)
            return json_response(200, {"queued": len(faults), "pending": fake.pending_faults})
        if route == "spend":
            return _spend(fake, expect_type(payload, dict, "body"))
        steps = expect_type(expect_type(payload, dict, "body")["steps"], list, "steps")
        parsed: list[tuple[int, CreditLines]] = []
        for step in steps:
            count, credits = expect_type(step, list, "step")
            expect_type(count, int, "step count")
            parsed.append((count, expect_type(credits, list, "credits") if credits is not None else None))
        fake.schedule_credits(parsed)
        return json_response(200, {"steps": len(parsed)})
    except (ValueError, KeyError, TypeError) as error:
        return problem_response(400, f"Invalid control request: {error}")


def _spend(fake: FakeTamtamServer, payload: dict[str, object]) -> Response:
    if set(payload) != {"credit_type", "credits"}:
        raise ValueError('a spend is exactly {"credit_type": <type>, "credits": <count>}')
    credit_type = expect_type(payload["credit_type"], str, "credit_type")
    amount = expect_type(payload["credits"], int, "credits")
    try:
        remaining = fake.spend(credit_type, amount)
    except SpendRefused as refused:
        return problem_response(409, str(refused))
    return json_response(200, {"credit_type": credit_type, "credits": amount, "remaining": remaining})
