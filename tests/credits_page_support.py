"""Helpers for the credits page tests: a real api-server app, signed-in users and a reader of the page."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

PAGE = "/tamtam/"
#: Airflow 3.1 puts an unset ``[api_auth] jwt_issuer`` into tokens as ``[]``, which PyJWT 2.10+ refuses
#: to sign; a deployment sets an issuer anyway, and so do these tests.
JWT_ISSUER_ENV = {"AIRFLOW__API_AUTH__JWT_ISSUER": "tamtam-provider-tests"}


def unique_conn_id(prefix: str = "tt_page") -> str:
    """A connection id no other test uses: the page's readings live as long as the api-server process."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def token_for(role: str, username: str = "someone") -> str:
    """A JWT of the api-server's auth manager (simple auth manager in the test home) for a user of ``role``."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    token: str = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=username, role=role))
    return token


def bearer(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(role)}"}


@dataclass
class Card:
    """What the page shows for one connection."""

    conn_id: str
    rows: dict[str, dict[str, int]] = field(default_factory=dict)
    lines: dict[str, list[str]] = field(default_factory=dict)
    read_at: str | None = None
    error: str = ""
    refreshing: bool = False
    sections: list[str] = field(default_factory=list)
    text: str = ""


class _CardParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.cards: dict[str, Card] = {}
        self._card: Card | None = None
        self._row: str | None = None
        self._capture: str | None = None
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section" and "data-conn-id" in a:
            self._card = self.cards.setdefault(str(a["data-conn-id"]), Card(str(a["data-conn-id"])))
            return
        card = self._card
        if card is None:
            return
        if tag == "tr" and "data-credit-type" in a:
            self._row = str(a["data-credit-type"])
            card.rows[self._row] = {k: int(str(a[f"data-{k}"])) for k in ("remaining", "used", "total")}
            card.lines[self._row] = []
        if "data-read-at" in a:
            card.read_at = a["data-read-at"]
        if "data-refreshing" in a:
            card.refreshing = True
        if "data-section" in a:
            card.sections.append(str(a["data-section"]))
        if "data-error" in a:
            self._capture = "error"
        if "data-line" in a:
            self._capture = "line"

    def handle_endtag(self, tag: str) -> None:
        if tag == "section" and self._card is not None:
            self._card = None
        if tag in ("p", "li"):
            self._capture = None

    def handle_data(self, data: str) -> None:
        card = self._card
        if card is None:
            return
        card.text += data
        if self._capture == "error":
            card.error += data
        elif self._capture == "line" and self._row is not None:
            card.lines[self._row].append(data.strip())


def read_cards(html: str) -> dict[str, Card]:
    """Every connection card of a rendered page, by connection id."""
    parser = _CardParser()
    parser.feed(html)
    return parser.cards


def conn_json(**fields: Any) -> str:
    return json.dumps({"conn_type": "tamtam", **fields})
