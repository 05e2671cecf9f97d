"""The API base URL of a connection, and the Authorization header that goes only to its origin."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import requests

from airflow_provider_tamtam import DEFAULT_BASE_URL
from airflow_provider_tamtam.exceptions import TamtamConfigError


def normalize_base_url(
    host: str | None, *, port: int | None = None, path: str | None = None, allow_insecure_http: bool = False
) -> str:
    """Turn a connection's host into the API base URL, refusing ones that would leak the credential.

    Empty means the public API; a bare hostname gets ``https://``; plain ``http://`` is allowed only to a
    loopback host unless ``allow_insecure_http`` is set. ``port`` and ``path`` come from a connection URI
    such as ``tamtam://:KEY@api.example.com:8443/api``, which Airflow splits into host, port and schema.
    """
    raw = (host or "").strip()
    if not raw:
        return DEFAULT_BASE_URL
    url = raw if "://" in raw else f"https://{raw}"
    parts = urlsplit(url)
    if port and parts.port is None:
        parts = parts._replace(netloc=f"{parts.netloc}:{port}")
    if path and path.strip("/"):
        parts = parts._replace(path=f"{parts.path.rstrip('/')}/{path.strip('/')}")
    url = parts.geturl()
    if parts.scheme not in ("http", "https"):
        raise TamtamConfigError(
            f"Tamtam base URL must start with https:// or http://, got scheme {parts.scheme!r}"
        )
    if not parts.hostname:
        raise TamtamConfigError(f"Tamtam base URL {raw!r} has no host name")
    if parts.username or parts.password:
        raise TamtamConfigError(
            "Tamtam base URL must not hold a user name or password: put the credential in the password field"
        )
    if parts.query or parts.fragment:
        raise TamtamConfigError("Tamtam base URL must not have a query string or fragment")
    if parts.scheme == "http" and not allow_insecure_http and not _is_loopback(parts.hostname):
        raise TamtamConfigError(
            f"Refusing plain http:// to {parts.hostname}: the credential would travel unencrypted. "
            "Use https://, or set extra allow_insecure_http=true if you really mean it"
        )
    return url.rstrip("/")


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def origin(url: str) -> tuple[str, str | None, int | None]:
    """Scheme, host and port of ``url``: the credential is sent only where these equal the base URL's."""
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


class AuthorizationHeader(requests.auth.AuthBase):
    """Sets the Authorization header per request; its repr never shows the value.

    Passing auth this way (not as a plain header) also stops requests from swapping in ``~/.netrc``
    credentials; the client passes it only for the base URL's :func:`origin`.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._value
        return request

    def __repr__(self) -> str:
        return "<Authorization: redacted>"


class NoAuthorization(requests.auth.AuthBase):
    """No credential (after a redirect to another origin); also keeps requests from reading ``~/.netrc``."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.pop("Authorization", None)
        return request
