"""Typed views of the Tamtam API payloads, validated against the OpenAPI contract.

Pydantic does the type checking in strict mode, so ``"10"``, ``10.5`` or ``true`` where the contract says
integer are rejected rather than coerced; unknown extra fields are ignored for forward compatibility.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

INT32 = Annotated[StrictInt, Field(ge=-(2**31), le=2**31 - 1)]


class CreditLine(BaseModel):
    """One credit line of one active subscription (``CreditLineV2Dto``)."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    credit_type: StrictStr
    used_credits: INT32
    total_credits: INT32
    remaining_credits: INT32

    def to_dict(self) -> dict[str, Any]:
        """Return the line with exactly the API's field names, ready for XCom."""
        return self.model_dump()


class CreditsResponse(BaseModel):
    """The body of ``GET /v2/credits``; ``credits: null`` means the account has no active subscription."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    credits: list[CreditLine] | None


class ErrorDetail(BaseModel):
    """One entry of a problem's ``errors`` list."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    location: str | None = None
    message: str | None = None
    value: Any = None


class Problem(BaseModel):
    """An RFC 9457 ``application/problem+json`` error body (``ErrorModel``)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: str = "about:blank"
    title: str | None = None
    status: int | None = None
    detail: str | None = None
    instance: str | None = None
    errors: list[ErrorDetail] | None = None

    def summary(self) -> str:
        """One line for an exception message: title, detail and the individual error messages."""
        parts = [p for p in (self.title, self.detail) if p]
        parts += [f"{e.location}: {e.message}" if e.location else str(e.message) for e in self.errors or []]
        return "; ".join(parts) or self.type

    def redacted(self, redact: Callable[[Any], Any]) -> Problem:
        """A copy with every field (``errors[].value`` included, however nested) passed through ``redact``.

        ``redact`` maps parsed JSON to parsed JSON, e.g. ``Redactor.deep`` removing the credential.
        """
        return Problem.model_validate(redact(self.model_dump()))


def describe_validation_error(exc: ValidationError) -> str:
    """Name every broken field as a path such as ``credits[2].remaining_credits``, with what was wrong."""
    messages = []
    for err in exc.errors(include_url=False):
        path = ""
        for part in err["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        found = type(err["input"]).__name__ if err["type"] != "missing" else None
        messages.append(f"{path or 'body'}: {err['msg']}" + (f" (got {found})" if found else ""))
    return "; ".join(messages)


class CreditSummary(BaseModel):
    """The lines of one credit type added up: the API returns one line per active subscription."""

    model_config = ConfigDict(frozen=True)

    credit_type: str
    remaining: int
    used: int
    total: int
    lines: tuple[CreditLine, ...]
    known_types: tuple[str, ...]

    @classmethod
    def of(cls, lines: list[CreditLine], credit_type: str) -> CreditSummary:
        """Sum the lines of ``credit_type``; an absent type sums to 0 and ``known_types`` says what exists."""
        matching = tuple(line for line in lines if line.credit_type == credit_type)
        return cls(
            credit_type=credit_type,
            remaining=sum(line.remaining_credits for line in matching),
            used=sum(line.used_credits for line in matching),
            total=sum(line.total_credits for line in matching),
            lines=matching,
            known_types=tuple(sorted({line.credit_type for line in lines})),
        )

    def line_dicts(self) -> list[dict[str, Any]]:
        return [line.to_dict() for line in self.lines]

    def describe_absence(self) -> str:
        """Empty when the type exists; else a hint naming the types that do, so a typo shows in the log."""
        if self.lines:
            return ""
        existing = ", ".join(self.known_types) or "none: the account has no active subscription"
        return f" (no line of type {self.credit_type!r}; types present: {existing})"
