"""The "Tamtam credits" page in a real browser, against a running api-server of this deployment.

Adds a Tamtam connection to the fake API through the REST API (a database connection, so the page reads
it the way an api-server does), opens Airflow's UI in headless Chromium (Debian's ``chromium`` through the
``playwright`` Python package; no browser download), goes Browse > Tamtam credits, and checks that the
page, inside the UI's frame, shows for that connection exactly the credit lines the fake API answers
with. Also checks that the page's URL refuses a request without a session, and saves a screenshot of the
UI with the page in it. The connection is deleted again at the end.

Given users of the simple auth manager (``--user admin:PASSWORD``, and optionally a ``--viewer``), the
browser signs in through Airflow's login form and a viewer must be refused (403). Under
``simple_auth_manager_all_admins`` every request is an admin's, the api-server's own routes included, so
the refusal of anonymous requests cannot be shown there and is reported as not checked.

``deploy/credits_page_scenario.py`` calls :func:`run` in ``make deploy-check``. Stand-alone, from the
repository root::

    .venv/bin/python -m deploy.browser_credits_page --api-url http://127.0.0.1:8080 \
        --fake-url http://127.0.0.1:9999/api --api-key KEY [--user admin:PW --viewer viewer:PW]
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from deploy.browser_form import _browser_page, ensure_dependencies
from deploy.report import REPO, display_path

PAGE_PATH = "/tamtam/"
NAV_MENU = "Browse"
NAV_ENTRY = "Tamtam credits"
CONN_PREFIX = "tamtam_page_check_"

Result = tuple[str, bool | None, str]
Log = Callable[[str], None]


def expected_rows(fake_url: str, api_key: str) -> dict[str, dict[str, int]]:
    """What the page must show: the fake API's own answer, summed per credit type."""
    response = requests.get(f"{fake_url}/v2/credits", headers={"Authorization": api_key}, timeout=30)
    response.raise_for_status()
    rows: dict[str, dict[str, int]] = {}
    for line in response.json()["credits"] or []:
        row = rows.setdefault(line["credit_type"], {"remaining": 0, "used": 0, "total": 0})
        row["remaining"] += line["remaining_credits"]
        row["used"] += line["used_credits"]
        row["total"] += line["total_credits"]
    return rows


def shown_rows(frame: Any, conn_id: str) -> dict[str, dict[str, int]]:
    """The credit rows the page shows for one connection, read from the data attributes of its table."""
    card = frame.locator(f'section[data-conn-id="{conn_id}"]')
    card.locator("tr[data-credit-type]").first.wait_for()
    rows: dict[str, dict[str, int]] = {}
    for row in card.locator("tr[data-credit-type]").all():
        rows[str(row.get_attribute("data-credit-type"))] = {
            key: int(str(row.get_attribute(f"data-{key}"))) for key in ("remaining", "used", "total")
        }
    return rows


def api_token(api_url: str, user: tuple[str, str] | None) -> str:
    """A JWT of the api-server: for ``user`` (name, password), or the all-admins token without one."""
    if user is None:
        response = requests.get(f"{api_url}/auth/token", timeout=30)
    else:
        response = requests.post(
            f"{api_url}/auth/token", json={"username": user[0], "password": user[1]}, timeout=30
        )
    response.raise_for_status()
    return str(response.json()["access_token"])


def check_refusals(api_url: str, conn_id: str, viewer: tuple[str, str] | None) -> list[Result]:
    """The page's URL, requested directly: anonymous must get 401/403, a viewer 403, neither the data."""
    results: list[Result] = []
    anonymous = requests.get(f"{api_url}{PAGE_PATH}", timeout=60)
    if anonymous.status_code == 200 and requests.get(f"{api_url}/api/v2/connections", timeout=60).ok:
        results.append(
            (
                "UI: credits page refuses anonymous requests",
                None,
                "NOT CHECKED: simple_auth_manager_all_admins makes every request an admin's "
                "(GET /api/v2/connections answers 200 without a session too)",
            )
        )
    else:
        results.append(
            (
                "UI: credits page refuses anonymous requests",
                anonymous.status_code in (401, 403) and conn_id not in anonymous.text,
                f"GET {PAGE_PATH} without a session: HTTP {anonymous.status_code} {anonymous.text[:40]!r}",
            )
        )
    if viewer is not None:
        token = api_token(api_url, viewer)
        seen = requests.get(f"{api_url}{PAGE_PATH}", headers={"Authorization": f"Bearer {token}"}, timeout=60)
        results.append(
            (
                "UI: credits page refuses a viewer",
                seen.status_code == 403 and conn_id not in seen.text,
                f"GET {PAGE_PATH} as {viewer[0]!r} (role Viewer, may not read connections): "
                f"HTTP {seen.status_code} {seen.text[:40]!r}",
            )
        )
    return results


def sign_in(page: Any, api_url: str, user: tuple[str, str] | None) -> None:
    """Open the UI; with a user, through Airflow's login form, as a person would."""
    page.goto(api_url + "/", wait_until="networkidle")
    if user is not None:
        page.locator("input[name=username]").fill(user[0])
        page.locator("input[name=password]").fill(user[1])
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("button", name=NAV_MENU).wait_for()


def run(
    api_url: str,
    fake_url: str,
    api_key: str,
    screenshot: Path,
    log: Log = print,
    *,
    user: tuple[str, str] | None = None,
    viewer: tuple[str, str] | None = None,
) -> list[Result]:
    """Check the credits page as a signed-in user and as nobody; returns rows (name, passed, detail)."""
    ensure_dependencies(log)
    results: list[Result] = []
    conn_id = CONN_PREFIX + secrets.token_hex(3)
    rest = requests.Session()
    rest.headers["Authorization"] = f"Bearer {api_token(api_url, user)}"
    created = rest.post(
        f"{api_url}/api/v2/connections",
        json={"connection_id": conn_id, "conn_type": "tamtam", "host": fake_url, "password": api_key},
        timeout=60,
    )
    created.raise_for_status()
    try:
        results += check_refusals(api_url, conn_id, viewer)
        expected = expected_rows(fake_url, api_key)
        with _browser_page() as page:
            log(f"browser: signing in at {api_url} and going {NAV_MENU} > {NAV_ENTRY}")
            sign_in(page, api_url, user)
            page.get_by_role("button", name=NAV_MENU).click()
            page.get_by_role("menuitem", name=NAV_ENTRY).click()
            frame = page.frame_locator("iframe").first
            shown = shown_rows(frame, conn_id)
            secret_in_page = api_key in frame.locator("html").inner_html()
            results.append(
                (
                    "UI: credits page from the navigation",
                    shown == expected and not secret_in_page,
                    f"{NAV_MENU} > {NAV_ENTRY} at {page.url.removeprefix(api_url)}: {conn_id} shows {shown}"
                    + ("" if shown == expected else f"; the fake API says {expected}")
                    + ("; THE API KEY IS IN THE PAGE" if secret_in_page else "; no credential in the page"),
                )
            )
            page.set_viewport_size({"width": 1280, "height": 800})
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot))
            dark = screenshot.with_name(screenshot.stem + "-dark" + screenshot.suffix)
            page.emulate_media(color_scheme="dark")  # the page follows prefers-color-scheme
            frame.locator("body").wait_for()
            page.wait_for_timeout(300)
            page.screenshot(path=str(dark))
            log(f"browser: saved the credits page to {display_path(screenshot)} and {display_path(dark)}")
    finally:
        deleted = rest.delete(f"{api_url}/api/v2/connections/{conn_id}", timeout=60)
        if deleted.status_code != 204:
            log(f"browser: could not delete {conn_id}: HTTP {deleted.status_code}")
    return results


def _credentials(text: str | None) -> tuple[str, str] | None:
    if text is None:
        return None
    name, sep, password = text.partition(":")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME:PASSWORD, got {text!r}")
    return name, password


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--api-url", required=True, help="api-server base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--fake-url", required=True, help="base URL of the Tamtam API the connection uses")
    parser.add_argument("--api-key", required=True, help="key the Tamtam API accepts")
    parser.add_argument("--screenshot", type=Path, default=REPO / "docs" / "credits-page.png")
    parser.add_argument("--user", help="NAME:PASSWORD of a user who may read connections (else all-admins)")
    parser.add_argument("--viewer", help="NAME:PASSWORD of a user who may not read connections")
    args = parser.parse_args(argv)
    results = run(
        args.api_url,
        args.fake_url,
        args.api_key,
        args.screenshot.resolve(),
        user=_credentials(args.user),
        viewer=_credentials(args.viewer),
    )
    for name, passed, detail in results:
        print(f"{ {True: 'PASS', False: 'FAIL', None: 'INFO'}[passed] }: {name}: {detail}")
    return 1 if any(passed is False for _, passed, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
