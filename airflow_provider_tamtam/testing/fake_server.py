"""The fake Tamtam server's first module name: its command line entry point, and its names kept importable.

``python -m airflow_provider_tamtam.testing.fake_server`` serves a fake API (see ``cli``). Every name of
``airflow_provider_tamtam.testing`` can still be imported from here; new code imports them from there.
"""

from __future__ import annotations

from airflow_provider_tamtam import testing as _testing
from airflow_provider_tamtam.testing.cli import main

__all__ = [*_testing.__all__, "main"]


def __getattr__(name: str) -> object:
    """Resolve the package's names here too, e.g. ``from ...fake_server import FakeTamtamServer``."""
    if name in _testing.__all__:
        return getattr(_testing, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    raise SystemExit(main())
