"""TamtamHook: reads the credential from an Airflow connection and calls the Tamtam API."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from airflow_provider_tamtam import CONN_FIELDS, UI_FIELD_BEHAVIOUR
from airflow_provider_tamtam._compat import (
    AirflowNotFoundException,
    aget_connection,
    amask_secret,
    mask_secret,
)
from airflow_provider_tamtam.client import RetryPolicy, TamtamClient, normalize_base_url
from airflow_provider_tamtam.exceptions import TamtamAuthError, TamtamConfigError, TamtamError
from airflow_provider_tamtam.models import CreditLine

AUTH_TYPES = ("api_key", "bearer")
DEFAULT_TIMEOUT = float(CONN_FIELDS["timeout"]["schema"]["default"])
DEFAULT_MAX_RETRIES = int(CONN_FIELDS["max_retries"]["schema"]["default"])


class TamtamHook(BaseHook):
    """Call the Tamtam API with the credential of an Airflow connection of type ``tamtam``.

    The connection's password is the API key (sent raw as ``Authorization``) or, with extra
    ``auth_type: bearer``, an OAuth 2.1 JWT (sent as ``Bearer <jwt>``). Host is the base URL; empty means
    the public API. Extras ``timeout`` and ``max_retries`` tune requests; keyword arguments override them.

    :param tamtam_conn_id: the connection to read.
    :param timeout: seconds one attempt may take in all: connect, redirects, headers and body.
    :param max_retries: retries of transient failures (connection errors, 408, 429, 5xx gateway errors).
    :param retry_policy: backoff, ``Retry-After`` cap and the overall deadline of one call.
    """

    conn_name_attr = "tamtam_conn_id"
    default_conn_name = "tamtam_default"
    conn_type = "tamtam"
    hook_name = "Tamtam"

    def __init__(
        self,
        tamtam_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        retry_policy: RetryPolicy | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tamtam_conn_id = tamtam_conn_id
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_policy = retry_policy
        self._client: TamtamClient | None = None
        self._settings: tuple[Any, ...] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tamtam_conn_id={self.tamtam_conn_id!r})"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Form layout for Airflow versions that read it from the hook rather than the provider info.

        The hook's form of it spells the keys with underscores (``hidden_fields``), the provider info's
        with hyphens.
        """
        return {key.replace("-", "_"): value for key, value in UI_FIELD_BEHAVIOUR.items()}

    def get_conn(self, *, reread: bool = False) -> TamtamClient:
        """Return the API client, reading and checking the connection on first use.

        With ``reread`` the connection is looked up again even when a client exists; the client is rebuilt
        only when a setting changed (key, host, timeout, ...), and a deleted connection raises.
        """
        if self._client is None or reread:
            try:
                conn = self.get_connection(self.tamtam_conn_id)
            except AirflowNotFoundException:
                raise self._missing_connection() from None
            password = self._changed_password(conn)
            if password is not None:
                mask_secret(password)
                self._use(conn, password)
        return self._current_client()

    async def aget_conn(self, *, reread: bool = False) -> TamtamClient:
        """Async :meth:`get_conn` for triggers: no sync connection lookup and no blocking call on the loop."""
        if self._client is None or reread:
            try:
                conn = await aget_connection(self.tamtam_conn_id)
            except AirflowNotFoundException:
                raise self._missing_connection() from None
            except Exception as exc:
                if self._client is None:
                    raise
                # a secrets backend or metadata database that fails for a moment must not end every wait
                self.log.warning(
                    "Could not re-read Tamtam connection %r (%s); keeping it as it was",
                    self.tamtam_conn_id,
                    type(exc).__name__,
                )
                return self._client
            password = self._changed_password(conn)
            if password is not None:
                await amask_secret(password)
                self._use(conn, password)
        return self._current_client()

    def get_credits(self) -> list[CreditLine]:
        """Return every credit line of the account; ``[]`` when it has no active subscription.

        A refused credential (401/403) makes the hook read the connection again: when the key or token
        there changed (rotated meanwhile), the request is sent again at once with it; only a refusal of the
        connection's current credential is raised.
        """
        client = self.get_conn()
        try:
            return client.get_credits()
        except TamtamAuthError:
            current = self.get_conn(reread=True)
            if current is client:
                raise  # the connection still holds what was refused
        return current.get_credits()

    async def aget_credits(self, *, reread_connection: bool = False) -> list[CreditLine]:
        """Async :meth:`get_credits`, for triggers; it never blocks the event loop.

        With ``reread_connection`` the connection is read before the call too (the client is kept unless
        a setting changed), so long-lived callers follow every edit of it.
        """
        client = await self.aget_conn(reread=reread_connection)
        try:
            return await client.aget_credits()
        except TamtamAuthError:
            current = await self.aget_conn(reread=True)
            if current is client:
                raise  # the connection still holds what was refused
        return await current.aget_credits()

    def test_connection(self) -> tuple[bool, str]:
        """Back the UI's Test button and ``airflow connections test``: one real call, no secret in it."""
        try:
            lines = self.get_credits()
        except TamtamError as exc:
            return False, str(exc)
        types = sorted({line.credit_type for line in lines})
        return (
            True,
            f"Connected to Tamtam: {len(lines)} credit line(s){': ' + ', '.join(types) if types else ''}",
        )

    def _missing_connection(self) -> TamtamConfigError:
        conn_id = self.tamtam_conn_id
        return TamtamConfigError(
            f"Tamtam connection {conn_id!r} is not defined: add it under Admin > Connections, "
            f"as the environment variable AIRFLOW_CONN_{conn_id.upper()}, or in your secrets backend"
        )

    def _changed_password(self, conn: Any) -> str | None:
        """The checked password when the client must be (re)built from ``conn``; None when it is current."""
        if self._client is not None and _settings_of(conn) == self._settings:
            return None
        return self._password(conn)

    def _use(self, conn: Any, password: str) -> None:
        """Build the client for ``conn`` and close the one it replaces."""
        client = self._build_client(conn, password)
        if self._client is not None:
            self._client.close()
        self._client, self._settings = client, _settings_of(conn)

    def _current_client(self) -> TamtamClient:
        assert self._client is not None
        return self._client

    def _password(self, conn: Any) -> str:
        password = (conn.password or "").strip()
        if not password:
            raise TamtamConfigError(
                f"Tamtam connection {self.tamtam_conn_id!r} has an empty password: "
                "put the API key (or, with auth_type bearer, the JWT) in the password field"
            )
        return str(password)

    def _build_client(self, conn: Any, password: str) -> TamtamClient:
        """Check every setting of the connection before the first request, naming the one that is wrong."""
        extra = conn.extra_dejson
        where = f"Tamtam connection {self.tamtam_conn_id!r}"
        auth_type = extra.get("auth_type") or "api_key"
        if auth_type not in AUTH_TYPES:
            raise TamtamConfigError(
                f"{where}: extra auth_type must be one of {AUTH_TYPES}, got {auth_type!r}"
            )
        if auth_type == "bearer":
            token = password.removeprefix("Bearer ").removeprefix("bearer ").strip()
            authorization = f"Bearer {token}"
        else:
            authorization = password
        timeout = (
            self.timeout if self.timeout is not None else _number(extra, "timeout", DEFAULT_TIMEOUT, where)
        )
        retries = self.max_retries
        if retries is None:
            retries = int(_number(extra, "max_retries", DEFAULT_MAX_RETRIES, where, integer=True))
        if timeout <= 0:
            raise TamtamConfigError(f"{where}: timeout must be a positive number of seconds, got {timeout!r}")
        if retries < 0:
            raise TamtamConfigError(f"{where}: max_retries must be 0 or more, got {retries!r}")
        base_url = normalize_base_url(
            conn.host,
            port=conn.port,
            path=conn.schema,
            allow_insecure_http=_flag(extra, "allow_insecure_http", where),
        )
        return TamtamClient(
            base_url,
            authorization,
            timeout=float(timeout),
            max_retries=int(retries),
            retry_policy=self.retry_policy,
            logger=self.log,
        )


def _number(extra: dict[str, Any], key: str, default: float, where: str, *, integer: bool = False) -> float:
    """Read a numeric extra that may arrive as a JSON number or as a string from a URI or a form."""
    value = extra.get(key)
    if value is None or value == "":
        return default
    kind = "a whole number" if integer else "a number"
    if isinstance(value, bool):
        raise TamtamConfigError(f"{where}: extra {key} must be {kind}, got {value!r}")
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise TamtamConfigError(f"{where}: extra {key} must be {kind}, got {value!r}") from None
    if integer and isinstance(value, float) and value != number:
        raise TamtamConfigError(f"{where}: extra {key} must be {kind}, got {value!r}")
    return number


def _flag(extra: dict[str, Any], key: str, where: str) -> bool:
    """Read a boolean extra that may arrive as true/false or as a string from a URI."""
    value = extra.get(key, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no", ""):
        return value.strip().lower() in ("true", "1", "yes")
    raise TamtamConfigError(f"{where}: extra {key} must be true or false, got {value!r}")


def _settings_of(conn: Any) -> tuple[Any, ...]:
    """Everything of a connection the client is built from; a change means a new client."""
    return (conn.host, conn.port, conn.schema, conn.password, conn.extra)
