"""Render the credits page from its Jinja2 template (shipped as package data), with autoescaping on."""

from __future__ import annotations

import datetime as dt
from functools import cache
from typing import TYPE_CHECKING

from jinja2 import Environment, PackageLoader, select_autoescape

if TYPE_CHECKING:
    from airflow_provider_tamtam.plugins.credits_page import ConnectionCard

TEMPLATE = "credits.html"


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("airflow_provider_tamtam.plugins", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["number"] = format_number
    env.filters["age"] = format_age
    return env


def format_number(value: int) -> str:
    """Thousands separated by thin spaces, as in ``12 345``: readable in any locale."""
    return f"{value:,}".replace(",", "\u202f")


def format_age(seconds: float) -> str:
    """How long ago, to the second below two minutes and to the minute after."""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s ago"
    return f"{seconds // 60} min ago"


def render_page(
    *, cards: list[ConnectionCard], refresh_seconds: int, now: dt.datetime, config_error: str = ""
) -> str:
    """The whole HTML document; the page reloads itself sooner while a reading is still on its way."""
    pending = any(card.refreshing for card in cards)
    return (
        _environment()
        .get_template(TEMPLATE)
        .render(
            cards=cards,
            refresh_seconds=refresh_seconds,
            reload_seconds=min(5, refresh_seconds) if pending else refresh_seconds,
            now=now,
            config_error=config_error,
        )
    )
