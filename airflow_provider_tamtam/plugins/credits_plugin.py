"""The Airflow plugin that mounts the credits page in the api-server and links it from the UI's navigation.

Airflow finds the plugin twice over: through the ``airflow.plugins`` entry point, which every Airflow
process reads, and through the provider info's ``plugins``, which Airflow reads only with
``[core] lazy_discover_providers = False``. Registering one plugin name twice shows as a plugin import
error in the UI, so the entry point hands over the plugin only when the provider info will not.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote, urlsplit

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_tamtam._compat import conf

URL_PREFIX = "/tamtam"
NAV_NAME = "Tamtam credits"
URL_ROUTE = "tamtam_credits"
# A gauge, inline so that the navigation needs no unauthenticated route of the app.
ICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="#017cee" '
    'stroke-width="2" stroke-linecap="round"><path d="M4 17a8 8 0 1 1 16 0"/><path d="M12 17l4-6"/></svg>'
)
ICON = "data:image/svg+xml," + quote(ICON_SVG)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class LazyCreditsApp:
    """An ASGI app that builds the page's FastAPI app on its first request.

    Every Airflow process loads plugins, but only the api-server serves them: the others never import
    FastAPI routes, Jinja2 templates or the api-server's security module on this plugin's account.
    """

    def __init__(self) -> None:
        self._app: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            from airflow_provider_tamtam.plugins.credits_page import create_credits_app

            self._app = create_credits_app()
        await self._app(scope, receive, send)


def base_path() -> str:
    """The path of ``[api] base_url`` without its trailing slash: ``""`` for an api-server at the root."""
    base_url = conf.get("api", "base_url", fallback="/") or "/"
    path = urlsplit(base_url).path if "://" in base_url else base_url
    return path.rstrip("/")


class TamtamCreditsPlugin(AirflowPlugin):
    """Serves the Tamtam credits page under ``/tamtam/`` and adds it to the UI's Browse menu (3.1+)."""

    name = "tamtam_credits"
    # Airflow reads these as class attributes (provider info plugins are never instantiated).
    fastapi_apps = [  # noqa: RUF012
        {"app": LazyCreditsApp(), "url_prefix": URL_PREFIX, "name": NAV_NAME}
    ]
    external_views = [  # noqa: RUF012
        {
            "name": NAV_NAME,
            "href": f"{base_path()}{URL_PREFIX}/",
            "destination": "nav",
            "category": "browse",
            "url_route": URL_ROUTE,
            "icon": ICON,
        }
    ]


def _entry_point_plugin() -> type[TamtamCreditsPlugin] | None:
    """The plugin for the ``airflow.plugins`` entry point; None when the provider info will load it.

    Airflow skips an entry point whose object is not a plugin class without complaint, and reads provider
    info plugins after entry points only when providers are not discovered lazily.
    """
    lazy = conf.getboolean("core", "lazy_discover_providers", fallback=True)
    return TamtamCreditsPlugin if lazy else None


entry_point_plugin = _entry_point_plugin()
