"""Child processes of the live check: started in their own process groups, stopped, and swept by marker.

Also the two small waiting helpers every part of the check uses: ``free_port`` and ``wait_for``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

import requests

from deploy.report import CheckFailed, display_path

MARKER_VAR = "TAMTAM_DEPLOY_CHECK_RUN"  # every process started here inherits it: how leftovers are found


def free_port() -> int:
    """A loopback port that is free now (the small race with other programs is acceptable here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    what: str,
    condition: Callable[[], bool],
    timeout: float,
    interval: float = 0.5,
    alive: Callable[[], None] | None = None,
) -> None:
    """Poll ``condition`` until it holds; raise :class:`CheckFailed` naming ``what`` after ``timeout`` s.

    Connection errors count as "not yet" (a component may still be starting); ``alive`` is called on each
    round so that a component that died ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        with contextlib.suppress(requests.ConnectionError, requests.Timeout):
            if condition():
                return
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Processes:
    """Child processes, each in its own process group, stopped by group and then swept by marker.

    Every child inherits ``MARKER_VAR`` with this run's id, so anything they spawned (task supervisors,
    trigger runners, api-server workers, the browser) is found in ``/proc`` and stopped by PID even when it
    left its process group. Only processes carrying this run's marker are ever signalled.
    """

    def __init__(self, marker: str, log_dir: Path) -> None:
        self.marker = marker
        self.log_dir = log_dir
        self.env: dict[str, str] = {**os.environ, MARKER_VAR: marker}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[TextIO] = []
        self._starts: dict[str, int] = {}
        self.log_paths: dict[str, Path] = {}  # the current log of each component, by name

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
        """Start ``argv`` in a new session, output to ``<log_dir>/<name>[.N].log``; returns its PID.

        ``env`` adds to (or overrides) the deployment's environment for this process only.
        """
        count = self._starts.get(name, 0)
        self._starts[name] = count + 1
        path = self.log_dir / (f"{name}.log" if count == 0 else f"{name}.{count}.log")
        self.log_paths[name] = path
        log = open(path, "w")  # noqa: SIM115
        self._logs.append(log)  # closed in stop_all
        self.procs[name] = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**self.env, **(env or {})},
            cwd=self.log_dir,
            start_new_session=True,
        )
        return self.procs[name].pid

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def ensure_running(self) -> None:
        """Fail fast, naming the log to read, when a component died on its own."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise CheckFailed(
                    f"{name} exited with code {proc.returncode}; see {display_path(self.log_paths[name])}"
                )

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal one component's whole process group and reap it; SIGKILL the group after 30 s, or at once.

        The group is always SIGKILLed at the end: children left behind by a leader that exited on SIGTERM
        would otherwise escape :meth:`stop_all`, which only knows the components still registered.
        """
        proc = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    def stop_all(self, grace: float = 10.0) -> None:
        """SIGTERM every group, then SIGKILL each group once its leader exited or ``grace`` s passed."""
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group may outlive its leader
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self.procs.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()

    def sweep(self) -> list[int]:
        """SIGKILL, by PID, every process but this one that carries this run's marker."""
        swept: set[int] = set()
        for _ in range(10):
            found = self.leftovers()
            if not found:
                break
            for pid in found:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                    swept.add(pid)
            time.sleep(0.5)
        return sorted(swept)

    def leftovers(self) -> list[int]:
        """Live processes other than this one whose environment holds this run's marker."""
        needle = f"{MARKER_VAR}={self.marker}".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes()
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state != "Z" and needle in environ.split(b"\0"):
                pids.append(int(entry.name))
        return pids
