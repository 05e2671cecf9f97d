"""The distribution declares every third-party package the provider imports, each with a lower bound.

The imports are read from the source with ``ast`` (every ``import`` statement, also those under
``TYPE_CHECKING`` or in a function), mapped to distributions with ``packages_distributions()``, and
compared with the requirements the installed distribution declares (``importlib.metadata``).
"""

from __future__ import annotations

import ast
import sys
from importlib.metadata import packages_distributions, requires, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PACKAGE = Path(__file__).resolve().parent.parent / "airflow_provider_tamtam"
DISTRIBUTION = "airflow-provider-tamtam"


def imported_top_level_names() -> dict[str, set[str]]:
    """Top-level module name of every absolute import in the package -> the files importing it."""
    names: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                names.setdefault(module.split(".")[0], set()).add(path.relative_to(PACKAGE.parent).as_posix())
    return names


def third_party_imports() -> dict[str, set[str]]:
    own = PACKAGE.name
    return {
        name: files
        for name, files in imported_top_level_names().items()
        if name not in sys.stdlib_module_names and name != own
    }


def runtime_requirements() -> list[Requirement]:
    """The distribution's requirements outside any extra."""
    parsed = [Requirement(text) for text in requires(DISTRIBUTION) or []]
    return [req for req in parsed if req.marker is None or req.marker.evaluate({"extra": ""})]


def provided_by(requirement: Requirement) -> set[str]:
    """The distribution a requirement names and the ones it requires in turn (canonical names)."""
    names: set[str] = {canonicalize_name(requirement.name)}
    for text in requires(requirement.name) or []:
        nested = Requirement(text)
        if nested.marker is None or nested.marker.evaluate({"extra": ""}):
            names.add(canonicalize_name(nested.name))
    return names


def test_the_import_scan_sees_the_known_third_party_imports() -> None:
    assert {"airflow", "pydantic", "requests", "tenacity"} <= set(third_party_imports())


def test_every_third_party_import_is_declared() -> None:
    distributions = packages_distributions()
    declared = {name for req in runtime_requirements() for name in provided_by(req)}
    undeclared = {
        name: sorted(files)
        for name, files in third_party_imports().items()
        if not {canonicalize_name(d) for d in distributions.get(name, [])} & declared
    }
    assert undeclared == {}, f"imported but not declared in pyproject.toml dependencies: {undeclared}"


def test_every_declared_requirement_is_imported() -> None:
    distributions = packages_distributions()
    imported = {
        canonicalize_name(dist) for name in third_party_imports() for dist in distributions.get(name, [])
    }
    unused = [str(req) for req in runtime_requirements() if not provided_by(req) & imported]
    assert unused == []


@pytest.mark.parametrize("requirement", runtime_requirements(), ids=str)
def test_each_requirement_has_a_lower_bound_the_installed_version_meets(requirement: Requirement) -> None:
    lower = [spec for spec in requirement.specifier if spec.operator in (">=", "==", "~=")]
    assert lower, f"{requirement} names no lowest version"
    assert requirement.specifier.contains(version(requirement.name), prereleases=True)
