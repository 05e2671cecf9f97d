"""The provider registers with a real Airflow and its package import stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from airflow_provider_tamtam import get_provider_info
from tests.conftest import airflow_cli


def test_package_import_does_not_import_airflow() -> None:
    code = "import sys, airflow_provider_tamtam; print(sorted(m for m in ('airflow', 'requests', 'pydantic') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_provider_info_declares_the_connection_form() -> None:
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-tamtam"
    (conn,) = info["connection-types"]
    assert conn["connection-type"] == "tamtam"
    assert conn["hook-class-name"] == "airflow_provider_tamtam.hooks.tamtam.TamtamHook"
    assert conn["conn-fields"]["auth_type"]["schema"]["enum"] == ["api_key", "bearer"]
    assert set(conn["conn-fields"]) == {"auth_type", "timeout", "max_retries", "allow_insecure_http"}
    behaviour = conn["ui-field-behaviour"]
    assert behaviour["relabeling"] == {"host": "Base URL", "password": "API key or token"}
    assert behaviour["placeholders"]["host"] == "https://api.tamtam.ai/api"
    assert {"login", "schema", "port"} <= set(behaviour["hidden-fields"])


def test_airflow_lists_the_provider_and_its_hook(airflow_db: Path) -> None:
    providers = airflow_cli("providers", "list", "-o", "plain")
    assert providers.returncode == 0, providers.stderr[-2000:]
    assert "airflow-provider-tamtam" in providers.stdout
    hooks = airflow_cli("providers", "hooks", "-o", "plain")
    assert hooks.returncode == 0, hooks.stderr[-2000:]
    line = next(row for row in hooks.stdout.splitlines() if row.split()[:1] == ["tamtam"])
    assert "airflow_provider_tamtam.hooks.tamtam.TamtamHook" in line


def test_airflow_connections_test_uses_the_hook(airflow_db: Path) -> None:
    from airflow_provider_tamtam.testing import FakeTamtamServer
    from tests.conftest import API_KEY, conn_env

    with FakeTamtamServer(api_key=API_KEY) as server:
        env = conn_env("tamtam_cli", host=server.url, password=API_KEY)
        ok = airflow_cli("connections", "test", "tamtam_cli", env=env)
        assert "Connection success!" in ok.stdout
        assert server.request_count == 1
        bad = airflow_cli(
            "connections", "test", "tamtam_cli", env=conn_env("tamtam_cli", host=server.url, password="nope")
        )
        assert "HTTP 401" in bad.stdout + bad.stderr
        assert API_KEY not in ok.stdout + ok.stderr + bad.stdout + bad.stderr


def test_hook_field_behaviour_matches_airflows_schema() -> None:
    import json

    import airflow
    import jsonschema

    from airflow_provider_tamtam.hooks.tamtam import TamtamHook

    schema = json.loads(
        (Path(airflow.__file__).parent / "customized_form_field_behaviours.schema.json").read_text()
    )
    behaviour = TamtamHook.get_ui_field_behaviour()
    jsonschema.validate(behaviour, schema)
    assert behaviour["hidden_fields"] == ["schema", "login", "port"]
