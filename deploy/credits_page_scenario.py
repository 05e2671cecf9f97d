"""The Tamtam credits page in a real browser, signed in through Airflow's login form.

The deployment's api-server runs ``simple_auth_manager_all_admins`` (every request is an admin's, its own
routes included), under which no request can be refused. So this scenario starts a second api-server on
the same database and secrets with the simple auth manager's real sign-in (an admin and a viewer with
generated passwords), and runs ``deploy/browser_credits_page.py`` against it: Browse > Tamtam credits as
the admin, the numbers against the fake API, 401 without a session and 403 for the viewer.
"""

from __future__ import annotations

import argparse
import json
import secrets
from pathlib import Path

import requests

from deploy import browser_credits_page
from deploy.deployment import AIRFLOW, API_KEY
from deploy.processes import free_port, wait_for
from deploy.report import REPO, say
from deploy.scenario import Scenario

COMPONENT = "api-server-signin"


class CreditsPageCheck(Scenario):
    """Browse > Tamtam credits as a signed-in admin; refused to nobody and to a viewer."""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--credits-page-screenshot",
            type=Path,
            default=REPO / "docs" / "credits-page.png",
            help="where the credits page check saves the UI with the page (default docs/credits-page.png)",
        )

    @property
    def enabled(self) -> bool:
        return bool(self.args.browser)  # --no-browser skips every browser check

    def check(self) -> None:
        procs = self.live.procs
        passwords = {"admin": secrets.token_urlsafe(12), "viewer": secrets.token_urlsafe(12)}
        password_file = procs.log_dir.parent / "signin-passwords.json"
        password_file.write_text(json.dumps(passwords))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        shared_env = procs.env
        procs.env = {
            **shared_env,
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file),
        }
        try:
            procs.start(COMPONENT, [AIRFLOW, "api-server"])
        finally:
            procs.env = shared_env
        say(f"started a second api-server with sign-in ({url}) for the credits page")
        wait_for(
            "the sign-in api-server",
            lambda: requests.get(f"{url}/api/v2/version", timeout=5).status_code in (200, 401),
            180,
            1.0,
            procs.ensure_running,
        )
        for name, passed, detail in browser_credits_page.run(
            url,
            self.live.fake_url,
            API_KEY,
            self.args.credits_page_screenshot.resolve(),
            say,
            user=("admin", passwords["admin"]),
            viewer=("viewer", passwords["viewer"]),
        ):
            self.report.add(name, passed, detail)
