"""What the live deployment check prints: timestamped progress lines and the summary table of its checks.

Paths in the output are repo-relative or under ``$TMPDIR`` (``display_path``), so the output can be
committed as it is.
"""

from __future__ import annotations

import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def display_path(path: Path | str) -> str:
    """A path fit for output that may be committed: repo-relative, or under ``$TMPDIR``, else as given.

    ``$TMPDIR`` stands for Python's temporary directory (``$TMPDIR`` when set, else usually ``/tmp``).
    """
    resolved = Path(path).resolve()
    for base, label in ((REPO, ""), (Path(tempfile.gettempdir()).resolve(), "$TMPDIR/")):
        if resolved.is_relative_to(base):
            return label + resolved.relative_to(base).as_posix()
    return str(path)


class Console:
    """Timestamped progress lines on stdout, relative to the start of the check."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self.start:6.1f}s] {message}", flush=True)


say = Console()


@dataclass
class Check:
    """One row of the summary: a bar that passes or fails, or an informational measurement."""

    name: str
    passed: bool | None  # None: informational, never fails the run
    detail: str


@dataclass
class Report:
    """The rows of the summary table, in the order they were measured."""

    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, passed: bool | None, detail: str) -> None:
        self.checks.append(Check(name, passed, detail))
        say(f"{_mark(passed)}: {name}: {detail}")

    @property
    def failed(self) -> bool:
        return any(check.passed is False for check in self.checks)

    def table(self, detail_width: int = 78) -> str:
        """Plain-text table, details wrapped, that stays readable in a terminal and a CI log."""
        name_width = max([len("Check"), *(len(check.name) for check in self.checks)])
        rule = f"+-{'-' * name_width}-+------+-{'-' * detail_width}-+"
        lines = [rule, f"| {'Check'.ljust(name_width)} | Bar  | {'Detail'.ljust(detail_width)} |", rule]
        for check in self.checks:
            wrapped = textwrap.wrap(check.detail, detail_width, break_on_hyphens=False) or [""]
            for index, text in enumerate(wrapped):
                name, mark = (check.name, _mark(check.passed)) if index == 0 else ("", "")
                lines.append(f"| {name.ljust(name_width)} | {mark.ljust(4)} | {text.ljust(detail_width)} |")
        lines.append(rule)
        return "\n".join(lines)


def _mark(passed: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "info"}[passed]


class CheckFailed(Exception):
    """The deployment did not reach a state the check needs; the message says which."""
