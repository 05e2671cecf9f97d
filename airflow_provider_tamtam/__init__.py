"""Apache Airflow provider for the Tamtam Public API.

Importing this package stays light on purpose: Airflow's provider discovery imports it in every
Airflow process, so nothing here imports Airflow, requests or pydantic.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

DEFAULT_BASE_URL = "https://api.tamtam.ai/api"


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow: its package, hook and connection form."""
    return {
        "package-name": "airflow-provider-tamtam",
        "name": "Tamtam",
        "description": "Check Tamtam API credits, gate DAGs on them and schedule DAGs on credit levels.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Tamtam",
                "external-doc-url": "https://api.tamtam.ai/api",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "Tamtam", "python-modules": ["airflow_provider_tamtam.hooks.tamtam"]}],
        "operators": [
            {"integration-name": "Tamtam", "python-modules": ["airflow_provider_tamtam.operators.tamtam"]}
        ],
        "sensors": [
            {"integration-name": "Tamtam", "python-modules": ["airflow_provider_tamtam.sensors.tamtam"]}
        ],
        "triggers": [
            {"integration-name": "Tamtam", "python-modules": ["airflow_provider_tamtam.triggers.tamtam"]}
        ],
        "connection-types": [
            {
                "connection-type": "tamtam",
                "hook-class-name": "airflow_provider_tamtam.hooks.tamtam.TamtamHook",
                "hook-name": "Tamtam",
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
                "conn-fields": CONN_FIELDS,
            }
        ],
    }


UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "login", "port"],
    "relabeling": {"host": "Base URL", "password": "API key or token"},
    "placeholders": {
        "host": DEFAULT_BASE_URL,
        "password": "API key (auth_type api_key) or OAuth 2.1 JWT (auth_type bearer)",
    },
}

CONN_FIELDS: dict[str, Any] = {
    "auth_type": {
        "label": "Auth type",
        "description": "api_key sends the key as is in the Authorization header; bearer sends Bearer <jwt>.",
        "schema": {"type": ["string", "null"], "enum": ["api_key", "bearer"], "default": "api_key"},
    },
    "timeout": {
        "label": "Timeout (seconds)",
        "description": "Seconds one attempt may take in all: connect, redirects, headers and body.",
        "schema": {"type": ["number", "null"], "default": 30, "exclusiveMinimum": 0},
    },
    "max_retries": {
        "label": "Max retries",
        "description": "Retries on connection errors, timeouts, 408, 429 and 5xx gateway errors.",
        "schema": {"type": ["integer", "null"], "default": 5, "minimum": 0},
    },
    "allow_insecure_http": {
        "label": "Allow plain http:// to non-local hosts",
        "description": "Off by default: the credential would cross the network unencrypted.",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
}
