"""The Tamtam OpenAPI document shipped with the tests, as JSON Schema validators and generator schemas.

Validation uses ``jsonschema`` on the document itself (OpenAPI 3.1 schemas are JSON Schema 2020-12), with
its ``$ref``s resolved through a ``referencing`` registry and the OpenAPI ``int32``/``int64`` formats
checked as ranges. Hypothesis draws from the same schemas with the refs inlined and ``int32`` turned into
``minimum``/``maximum``, which is what that format means.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOCUMENT_PATH = Path(__file__).resolve().parent / "tamtam-openapi.yaml"
DOCUMENT_URI = "urn:tamtam-openapi"
CREDITS_PATH = "/v2/credits"
INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI document, parsed."""
    loaded: dict[str, Any] = yaml.safe_load(DOCUMENT_PATH.read_text())
    return loaded


def _format_checker() -> FormatChecker:
    checker = FormatChecker()
    for name, (low, high) in INT_RANGES.items():

        def in_range(value: object, low: int = low, high: int = high) -> bool:
            return not isinstance(value, int) or isinstance(value, bool) or low <= value <= high

        checker.checks(name)(in_range)
    return checker


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def validator(pointer: str) -> Draft202012Validator:
    """A validator for the schema at this JSON pointer into the document; its ``$ref``s resolve there."""
    resource = Resource.from_contents(document(), default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(DOCUMENT_URI, resource)
    return Draft202012Validator(
        {"$ref": f"{DOCUMENT_URI}#{pointer}"}, registry=registry, format_checker=_format_checker()
    )


def component(name: str) -> dict[str, Any]:
    """``#/components/schemas/<name>``."""
    schema: dict[str, Any] = document()["components"]["schemas"][name]
    return schema


def component_pointer(name: str) -> str:
    """The JSON pointer of ``#/components/schemas/<name>``."""
    component(name)
    return f"/components/schemas/{_escape(name)}"


def response_schema(status: int, content_type: str) -> str:
    """The JSON pointer of the schema the document gives for a credits answer of this status and type.

    Raises ``LookupError`` when the document allows no such answer (no matching response, or a media
    type the response does not list).
    """
    responses = document()["paths"][CREDITS_PATH]["get"]["responses"]
    key = str(status) if str(status) in responses else "default"
    if key not in responses:
        raise LookupError(f"the document has no response for HTTP {status}")
    media_type = content_type.split(";")[0].strip().lower()
    content = responses[key].get("content", {})
    if media_type not in content:
        raise LookupError(f"HTTP {status} must be one of {sorted(content)}, not {media_type!r}")
    parts = ["paths", CREDITS_PATH, "get", "responses", key, "content", media_type, "schema"]
    return "".join(f"/{_escape(part)}" for part in parts)


def errors(pointer: str, instance: object) -> list[str]:
    """Every way ``instance`` breaks the schema at ``pointer``, as ``path: message``; empty when none."""
    found = sorted(validator(pointer).iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}" for e in found]


def generation_schema(name: str) -> dict[str, Any]:
    """A component with its refs inlined and integer formats as bounds, for ``hypothesis_jsonschema``."""

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(component(node["$ref"].rsplit("/", 1)[1]))
            out = {k: inline(v) for k, v in node.items() if k not in ("examples", "description")}
            if out.get("type") == "integer" and out.get("format") in INT_RANGES:
                out["minimum"], out["maximum"] = INT_RANGES[out.pop("format")]
            return out
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    schema: dict[str, Any] = inline(component(name))
    return schema
