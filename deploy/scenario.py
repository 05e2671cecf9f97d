"""What a scenario of the live check is: its options, its DAG files and environment, and its run.

``deploy/check.py`` starts one deployment for every enabled scenario in ``SCENARIOS`` and runs them in
that order against it. A new scenario is a module with a ``Scenario`` subclass, added to that list.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from deploy.clients import AirflowApi, FakeApi
from deploy.deployment import Live
from deploy.processes import Processes
from deploy.report import Report, say


class Scenario:
    """One part of the live check; ``check`` runs it once the deployment is up and the DAGs are parsed.

    Subclasses override what they need: ``add_arguments`` (command-line options, a class method),
    ``enabled``, ``parallel_runs`` (DAG runs started at once, so the deployment makes room for them),
    ``dag_files`` and ``own_dag_ids`` (extra DAG files and the DAG ids they define), ``expected_dag_ids``
    (DAGs that must be parsed before any scenario runs), ``airflow_env`` (environment of every Airflow
    process), and ``check``.
    """

    live: Live
    report: Report

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add this scenario's command-line options."""

    @property
    def enabled(self) -> bool:
        """Whether the options ask for this scenario."""
        return True

    def parallel_runs(self) -> int:
        """DAG runs this scenario starts at once."""
        return 0

    def dag_files(self) -> Sequence[Path]:
        """DAG files of this scenario, copied beside the example DAGs."""
        return ()

    def own_dag_ids(self) -> Sequence[str]:
        """The DAG ids defined in ``dag_files``."""
        return ()

    def expected_dag_ids(self) -> Sequence[str]:
        """DAG ids that must be parsed before the scenarios run."""
        return self.own_dag_ids()

    def airflow_env(self) -> Mapping[str, str]:
        """Environment variables for every Airflow process of the deployment."""
        return {}

    def run(self, live: Live, report: Report) -> None:
        """Run ``check`` against ``live``, adding its rows to ``report``."""
        self.live, self.report = live, report
        self.check()

    def check(self) -> None:
        """The scenario itself."""
        raise NotImplementedError

    # -- shortcuts for subclasses

    @property
    def api(self) -> AirflowApi:
        return self.live.api

    @property
    def fake(self) -> FakeApi:
        return self.live.fake

    @property
    def procs(self) -> Processes:
        return self.live.procs

    def idle(self, seconds: float, what: str) -> None:
        """Let the deployment run untouched for ``seconds``, failing at once if a component dies."""
        say(f"{what}: watching for {seconds:.0f} s")
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.procs.ensure_running()
            time.sleep(min(2.0, left))
