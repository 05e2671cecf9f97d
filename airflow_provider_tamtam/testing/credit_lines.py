"""Credit lines as the fake Tamtam server holds them, and spending from them.

A balance is what ``GET /v2/credits`` answers with: a list of credit lines, or ``None`` for
``{"credits": null}``. ``spend_from`` takes credits of one type from its lines, oldest line first, and
refuses to take more than they have left.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Final, TypeAlias

__all__ = [
    "DEFAULT_CREDITS",
    "CreditLines",
    "Spend",
    "SpendRefused",
    "credit_line",
    "encode_credits",
    "remaining_of",
    "spend_from",
]

CreditLines: TypeAlias = list[dict[str, object]] | None


def credit_line(credit_type: str, *, used: int, total: int) -> dict[str, object]:
    """One credit line as the API sends it, with ``remaining_credits = total - used``."""
    return {
        "credit_type": credit_type,
        "used_credits": used,
        "total_credits": total,
        "remaining_credits": total - used,
    }


DEFAULT_CREDITS: Final[list[dict[str, object]]] = [credit_line("MaxKeyAccountsUnlocked", used=10, total=5000)]
"""The credit lines a new server answers with (copied, never shared)."""


def encode_credits(credits: CreditLines) -> bytes:
    """The body of a normal credits answer for these lines."""
    if credits is not None and not isinstance(credits, list):
        raise TypeError("credits must be a list of credit lines or None")
    return json.dumps({"credits": credits}).encode()


class SpendRefused(Exception):
    """A spend was refused and changed nothing: the credit type has fewer credits left than asked for."""


@dataclass(frozen=True)
class Spend:
    """One attempt to spend credits, in the server's spend log."""

    credit_type: str
    credits: int
    accepted: bool
    """False when the spend was refused (and changed nothing)."""
    remaining: int
    """Remaining credits of ``credit_type`` after the attempt, summed over its lines."""
    wall_time: float
    """``time.time()`` of the attempt."""

    def as_dict(self) -> dict[str, object]:
        """The JSON form the control API answers with."""
        return {
            "credit_type": self.credit_type,
            "credits": self.credits,
            "accepted": self.accepted,
            "remaining": self.remaining,
            "wall_time": self.wall_time,
        }


def _count(line: dict[str, object], field: str) -> int:
    value = line.get(field)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"credit line {line.get('credit_type')!r} has no integer {field}")
    return value


def remaining_of(credits: CreditLines, credit_type: str) -> int:
    """Remaining credits of ``credit_type``, summed over its lines (0 when it has none)."""
    lines = [line for line in credits or [] if line.get("credit_type") == credit_type]
    return sum(_count(line, "remaining_credits") for line in lines)


def spend_from(credits: CreditLines, credit_type: str, amount: int) -> tuple[CreditLines, int]:
    """Take ``amount`` credits of ``credit_type``, oldest line (first listed) first.

    Returns the new lines (the given ones are left alone) and the type's remaining credits afterwards.
    Raises ``SpendRefused`` when the type has fewer than ``amount`` credits left (none at all counts as
    zero), and ``ValueError`` for an amount below 1 or lines without integer counts.
    """
    if not isinstance(credit_type, str) or not credit_type:
        raise ValueError("credit_type must be a non-empty string")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
        raise ValueError(f"credits to spend must be a positive integer, got {amount!r}")
    available = remaining_of(credits, credit_type)
    if amount > available:
        raise SpendRefused(f"{credit_type} has {available} credits left, {amount} asked for")
    lines = copy.deepcopy(credits) or []
    left = amount
    for line in lines:
        if left == 0:
            break
        if line.get("credit_type") != credit_type:
            continue
        taken = min(max(_count(line, "remaining_credits"), 0), left)
        line["remaining_credits"] = _count(line, "remaining_credits") - taken
        line["used_credits"] = _count(line, "used_credits") + taken
        left -= taken
    return lines, available - amount
