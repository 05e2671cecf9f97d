"""Property-based: what the OpenAPI document allows, the hook returns as is; what it forbids, it rejects.

Allowed bodies are drawn from the document's ``GetCreditsResponseDto`` (``hypothesis-jsonschema``) and
served by the fake server as its credit lines; the hook must return exactly those lines. Forbidden bodies
are allowed ones with one field broken (a wrong type, a missing field, an int32 overflow); the hook must
raise ``TamtamResponseError`` naming the broken field. Examples are capped to keep this a few seconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from airflow_provider_tamtam.client import RetryPolicy
from airflow_provider_tamtam.exceptions import TamtamResponseError
from airflow_provider_tamtam.hooks.tamtam import TamtamHook
from airflow_provider_tamtam.testing import FakeTamtamServer, malformed_fault
from tests.contract import openapi

FAST = RetryPolicy(initial_wait=0.01, max_wait=0.02, deadline=10.0)
RESPONSE = openapi.response_schema(200, "application/json")
INT32_MIN, INT32_MAX = openapi.INT_RANGES["int32"]
INT_FIELDS = ("used_credits", "total_credits", "remaining_credits")
FIELDS = ("credit_type", *INT_FIELDS)
PROPERTY_SETTINGS = settings(
    max_examples=40,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

allowed_bodies = from_schema(openapi.generation_schema("GetCreditsResponseDto"))

not_an_int: st.SearchStrategy[object] = st.one_of(
    st.text(max_size=5),
    st.booleans(),
    st.none(),
    # JSON Schema counts 2.0 as an integer, so only floats with a fraction are forbidden
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not x.is_integer()),
    st.lists(st.integers(), max_size=2),
    st.just({}),
)
not_a_str: st.SearchStrategy[object] = st.one_of(
    st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False, allow_infinity=False), st.just([])
)
overflow = st.one_of(st.integers(min_value=INT32_MAX + 1), st.integers(max_value=INT32_MIN - 1))


credit_lines = cast(
    "st.SearchStrategy[dict[str, Any]]", from_schema(openapi.generation_schema("CreditLineV2Dto"))
)


@st.composite
def forbidden_bodies(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """An allowed body with one thing broken, and the field path the error must name."""
    lines: list[dict[str, Any]] = draw(st.lists(credit_lines, min_size=1, max_size=4))
    index = draw(st.integers(0, len(lines) - 1))
    field = draw(st.sampled_from(FIELDS))
    path = f"credits[{index}].{field}"
    how = draw(
        st.sampled_from(
            ["missing", "wrong type", "overflow"] if field in INT_FIELDS else ["missing", "wrong type"]
        )
    )
    if how == "missing":
        del lines[index][field]
    elif how == "overflow":
        lines[index][field] = draw(overflow)
    else:
        lines[index][field] = draw(not_an_int if field in INT_FIELDS else not_a_str)
    return {"credits": lines}, path


forbidden_tops: st.SearchStrategy[tuple[dict[str, Any], str]] = st.one_of(
    st.just(({}, "credits")),
    st.tuples(
        st.fixed_dictionaries(
            {"credits": st.one_of(st.text(max_size=3), st.integers(), st.just({}), st.booleans())}
        ),
        st.just("credits"),
    ),
)


@pytest.fixture
def hook(fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]) -> TamtamHook:
    tamtam_conn()
    return TamtamHook(retry_policy=FAST)


@PROPERTY_SETTINGS
@given(body=allowed_bodies)
def test_allowed_bodies_come_back_as_exactly_those_lines(
    fake_server: FakeTamtamServer, hook: TamtamHook, body: dict[str, Any]
) -> None:
    assert openapi.errors(RESPONSE, body) == []
    fake_server.set_credits(body["credits"])
    lines = hook.get_credits()
    assert [line.to_dict() for line in lines] == (body["credits"] or [])


@PROPERTY_SETTINGS
@given(case=st.one_of(forbidden_bodies(), forbidden_tops))
def test_forbidden_bodies_raise_a_response_error_naming_the_field(
    fake_server: FakeTamtamServer, hook: TamtamHook, case: tuple[dict[str, Any], str]
) -> None:
    body, path = case
    assert openapi.errors(RESPONSE, body) != []
    fake_server.add_faults(malformed_fault(json.dumps(body).encode()))
    with pytest.raises(TamtamResponseError) as raised:
        hook.get_credits()
    assert f"{path}:" in str(raised.value)
    assert fake_server.pending_faults == 0
