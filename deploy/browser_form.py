"""The Tamtam connection form in a real browser, against a running api-server of this deployment.

Drives Airflow 3's React UI in headless Chromium (Debian's ``chromium`` through the ``playwright`` Python
package; no browser download): Admin > Connections > Add Connection, type Tamtam. Checks that the form is
the one the provider info describes (relabelled Base URL and API key fields with their placeholders, the
``conn-fields`` extras with their labels, choices and defaults, no schema/login/port), fills and saves
it, then presses the connection's Test button, which must reach the fake Tamtam API and report success.

``deploy/check.py`` runs it as the ``ConnectionFormCheck`` scenario while its deployment is up. Stand-alone,
from the repository root, against a deployment with ``simple_auth_manager_all_admins`` and test_connection
enabled::

    .venv/bin/python -m deploy.browser_form --api-url http://127.0.0.1:8080 \
        --fake-url http://127.0.0.1:9999/api --api-key KEY
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from deploy.deployment import API_KEY
from deploy.report import REPO, display_path, say
from deploy.scenario import Scenario

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CONN_PREFIX = "tamtam_ui_check_"
RELABELLED = {"host": "Base URL", "password": "API key or token"}
HIDDEN = ("schema", "login", "port")
EXTRA_LABELS = {
    "auth_type": "Auth type",
    "timeout": "Timeout (seconds)",
    "max_retries": "Max retries",
    "allow_insecure_http": "Allow plain http:// to non-local hosts",
}
AUTH_TYPES = ["api_key", "bearer"]
# Airflow 3.3.2's list-row Test button posts ``port: 0`` for a connection without a port and the api-server
# answers 400 with this message (apache/airflow#73298, fixed upstream, not in a release yet).
PORT_ZERO_BUG = "host or port to test differs from the stored connection"

Result = tuple[str, bool | None, str]
Log = Callable[[str], None]


def ensure_dependencies(log: Log = print) -> None:
    """Install Debian's chromium and the playwright Python package when missing (never a browser download)."""
    if not CHROMIUM.exists():
        log("installing Debian's chromium package with apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env, capture_output=True
        )
    if importlib.util.find_spec("playwright") is None:
        log("installing the playwright Python package with pip (its browsers are not used)")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "playwright"], check=True, capture_output=True
        )


@contextlib.contextmanager
def _browser_page() -> Iterator[Any]:
    """A page of a fresh Chromium profile, closed (with its profile deleted) on exit."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="tamtam-chromium-")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=str(CHROMIUM),
                headless=True,
                args=CHROMIUM_FLAGS,
                viewport={"width": 1100, "height": 1300},
            )
            try:
                page = context.pages[0] if context.pages else context.new_page()
                page.set_default_timeout(20_000)
                yield page
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _visible_labels(dialog: Any) -> list[str]:
    return [text.strip() for text in dialog.locator("label:visible").all_inner_texts() if text.strip()]


def _compose(page: Any, shots: list[tuple[str, bytes]], path: Path) -> None:
    """Put the dialog's screenshots side by side, captioned, in one PNG (its accordion opens one part)."""
    cells = "".join(
        f'<figure><figcaption>{caption}</figcaption><img src="data:image/png;base64,'
        f'{base64.b64encode(png).decode()}"></figure>'
        for caption, png in shots
    )
    page.set_content(
        "<html><body style='margin:0;background:#f4f5f7;font:15px sans-serif'>"
        "<div id=board style='display:flex;gap:16px;padding:16px;align-items:flex-start;width:max-content'>"
        f"{cells}</div><style>figure{{margin:0}}figcaption{{padding:0 0 6px 2px;color:#333}}"
        "img{border:1px solid #ccd;display:block}</style></body></html>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    page.locator("#board").screenshot(path=str(path))


def run(api_url: str, fake_url: str, api_key: str, screenshot: Path, log: Log = print) -> list[Result]:
    """Add a Tamtam connection through the UI and test it; returns summary rows (name, passed, detail)."""
    ensure_dependencies(log)
    results: list[Result] = []
    conn_id = CONN_PREFIX + secrets.token_hex(3)  # unique, so reruns against one deployment never collide

    def add(name: str, passed: bool | None, detail: str) -> None:
        results.append((name, passed, detail))

    with _browser_page() as page:
        log(f"browser: opening {api_url} in headless Chromium")
        page.goto(api_url + "/", wait_until="networkidle")
        page.get_by_role("button", name="Admin").click()
        page.get_by_role("menuitem", name="Connections").click()
        page.get_by_role("button", name="Add Connection").click()
        dialog = page.get_by_role("dialog")
        conn_type = dialog.get_by_role("combobox").first
        conn_type.click()
        conn_type.fill("Tamtam")
        offered = page.get_by_role("option").all_inner_texts()
        page.keyboard.press("Enter")
        dialog.locator("input[name=host]").wait_for()
        add("UI: connection type offered", "Tamtam" in offered, f"type-ahead 'Tamtam' offers {offered}")

        # standard fields: relabelled and with placeholders; the unused ones are not rendered at all
        labels = _visible_labels(dialog)
        placeholders = {
            name: dialog.locator(f"input[name={name}]").get_attribute("placeholder") for name in RELABELLED
        }
        shown = [name for name in HIDDEN if dialog.locator(f"[name={name}]").count()]
        relabel_ok = all(label in labels for label in RELABELLED.values()) and not {"Host", "Password"} & set(
            labels
        )
        add(
            "UI: relabelled standard fields",
            relabel_ok and all(placeholders.values()),
            f"labels {labels[2:]}; placeholders host={placeholders['host']!r}, "
            f"password={placeholders['password']!r}",
        )
        add(
            "UI: unused fields hidden",
            not shown,
            "schema, login and port are not rendered" if not shown else f"rendered: {shown}",
        )
        dialog.locator("input[name=connection_id]").fill(conn_id)
        dialog.locator("input[name=host]").fill(fake_url)
        dialog.locator("input[name=password]").fill(api_key)
        standard_png = dialog.screenshot()

        # extra fields from conn-fields: labels, descriptions, the auth_type choice and the defaults
        dialog.get_by_role("button", name="Extra Fields", exact=True).click()
        dialog.locator("[name=element_timeout]").wait_for(state="visible")
        extra_labels = _visible_labels(dialog)
        missing = [label for label in EXTRA_LABELS.values() if label not in extra_labels]
        auth_select = dialog.locator("#element_auth_type")
        auth_value = auth_select.inner_text().strip()
        auth_select.get_by_role("combobox").click()
        choices = page.get_by_role("option").all_inner_texts()
        page.get_by_role("option", name="api_key", exact=True).click()
        defaults = {
            "timeout": dialog.locator("[name=element_timeout]").input_value(),
            "max_retries": dialog.locator("[name=element_max_retries]").input_value(),
            "allow_insecure_http": dialog.locator("[name=element_allow_insecure_http]").is_checked(),
        }
        add(
            "UI: conn-fields extras shown",
            not missing and choices == AUTH_TYPES and auth_value == "api_key",
            f"{', '.join(EXTRA_LABELS.values())}"
            + (f"; MISSING {missing}" if missing else "")
            + f"; auth_type choices {choices} (default {auth_value!r}); defaults "
            f"timeout={defaults['timeout']}, max_retries={defaults['max_retries']}, "
            f"allow_insecure_http={defaults['allow_insecure_http']}",
        )
        dialog.locator("[name=element_timeout]").fill("10")
        dialog.locator("[name=element_max_retries]").fill("2")
        dialog.locator("[name=element_max_retries]").press("Tab")
        extra_png = dialog.screenshot()
        board = page.context.new_page()
        _compose(
            board,
            [("Standard Fields (filled)", standard_png), ("Extra Fields (from conn-fields)", extra_png)],
            screenshot,
        )
        board.close()
        page.bring_to_front()  # a background tab does not animate: the result toast would never slide in
        log(f"browser: saved the filled form to {display_path(screenshot)}")

        # save: the stored connection must carry exactly what the form showed
        with page.expect_response(
            lambda r: r.url.endswith("/api/v2/connections") and r.request.method == "POST"
        ) as saved:
            dialog.get_by_role("button", name="Save").click()
        stored = saved.value.json()
        extra = json.loads(stored.get("extra") or "{}")
        expected_extra = {
            "auth_type": "api_key",
            "timeout": 10,
            "max_retries": 2,
            "allow_insecure_http": False,
        }
        unused = {key: stored.get(key) for key in HIDDEN if stored.get(key)}
        add(
            "UI: connection saved",
            saved.value.status == 201
            and stored.get("host") == fake_url
            and extra == expected_extra
            and not unused,
            f"HTTP {saved.value.status}; host={stored.get('host')}, password={stored.get('password')}, "
            f"extra={json.dumps(extra)}" + (f"; unexpected {unused}" if unused else ""),
        )

        # test: the row's Test button calls POST /api/v2/connections/test (TamtamHook.test_connection)
        row = page.get_by_role("row").filter(has_text=conn_id)
        page.set_viewport_size({"width": 1100, "height": 460})  # the result toast shows next to the row
        test_shot = screenshot.with_name("connection-test.png")
        status, message, toast = _press_test(page, row, test_shot)
        if status is True:
            add("UI: Test button", True, f"{toast!r}")
        elif PORT_ZERO_BUG in message:
            add(
                "UI: Test button, as shipped",
                None,
                f"KNOWN AIRFLOW 3.3.2 BUG, not the provider's: the UI posts port 0 for a port-less "
                f"connection and the api-server answers 400 ({message!r}); apache/airflow#73298",
            )

            def port_fix(route: Any, request: Any) -> None:
                body = json.loads(request.post_data or "{}")
                if body.get("port") == 0:  # what apache/airflow#73298 makes the api-server accept
                    body["port"] = None
                route.continue_(post_data=json.dumps(body))

            page.route("**/api/v2/connections/test", port_fix)
            page.get_by_role("status").first.wait_for(state="detached", timeout=30_000)  # the failure toast
            status, message, toast = _press_test(page, row, test_shot)
            add(
                "UI: Test button, port 0 sent as null",
                status is True,
                f"{toast!r}" if status is True else f"status {status}: {message!r} (toast {toast!r})",
            )
        else:
            add("UI: Test button", False, f"status {status}: {message!r} (toast {toast!r})")
        log(f"browser: saved the Test result to {display_path(test_shot)}")
        # leave the deployment as found: delete the connection with the UI's own session
        deleted = page.request.delete(f"{api_url}/api/v2/connections/{conn_id}")
        if deleted.status != 204:
            log(f"browser: could not delete {conn_id}: HTTP {deleted.status}")
    return results


def _press_test(page: Any, row: Any, shot: Path | None = None) -> tuple[bool | None, str, str]:
    """Press the row's Test button; return the API's status and message and the toast the UI showed."""
    with page.expect_response(lambda r: r.url.endswith("/api/v2/connections/test")) as answer:
        row.get_by_role("button", name="Test Connection").click()
    response = answer.value
    body: dict[str, Any] = response.json() if response.ok else {}
    if not response.ok:
        detail = response.json().get("detail", "")
        message = detail if isinstance(detail, str) else json.dumps(detail)
    else:
        message = str(body.get("message", ""))
    outcome = "Successful" if response.ok and body.get("status") else "Failed"
    toast = page.get_by_role("status").filter(has_text=f"Test Connection {outcome}").last
    toast.wait_for()
    text = " / ".join(line.strip() for line in toast.inner_text().splitlines() if line.strip())
    if shot is not None:
        _wait_until_still(page, toast)
        page.screenshot(path=str(shot))
    return (bool(body.get("status")) if response.ok else None), message, text


def _wait_until_still(page: Any, element: Any, timeout_ms: int = 3000) -> None:
    """Wait for an element to stop moving (a toast slides in from below the viewport)."""
    previous = None
    for _ in range(timeout_ms // 50):
        box = element.bounding_box()
        if box is not None and previous is not None and abs(box["y"] - previous["y"]) < 0.5:
            viewport = page.viewport_size
            if viewport is None or box["y"] + box["height"] <= viewport["height"]:
                return
        previous = box
        page.wait_for_timeout(50)


class ConnectionFormCheck(Scenario):
    """The connection form in Chromium against this deployment's api-server."""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--no-browser", dest="browser", action="store_false", help="skip the browser check"
        )
        parser.add_argument(
            "--screenshot",
            type=Path,
            default=REPO / "docs" / "connection-form.png",
            help="where the browser check saves the filled form (default docs/connection-form.png)",
        )

    @property
    def enabled(self) -> bool:
        return bool(self.args.browser)

    def check(self) -> None:
        """Fill, save and test a Tamtam connection in the UI; each finding is a row of the report."""
        screenshot = self.args.screenshot.resolve()
        for name, passed, detail in run(self.live.api_url, self.live.fake_url, API_KEY, screenshot, say):
            self.report.add(name, passed, detail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--api-url", required=True, help="api-server base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--fake-url", required=True, help="base URL of the Tamtam API to put in the form")
    parser.add_argument("--api-key", required=True, help="key the Tamtam API accepts")
    parser.add_argument(
        "--screenshot",
        type=Path,
        default=REPO / "docs" / "connection-form.png",
    )
    args = parser.parse_args(argv)
    results = run(args.api_url, args.fake_url, args.api_key, args.screenshot.resolve())
    for name, passed, detail in results:
        print(f"{ {True: 'PASS', False: 'FAIL', None: 'INFO'}[passed] }: {name}: {detail}")
    return 1 if any(passed is False for _, passed, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
