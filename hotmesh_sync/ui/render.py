"""Jinja2 templates of the dashboard, autoescaped: entity documents are user data."""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from . import presenters
from .http import link


def _when(moment: Any) -> str:
    """A moment as UTC text to the second; '' for none."""
    if not isinstance(moment, datetime):
        return "" if moment is None else str(moment)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _clock(moment: Any) -> str:
    """The time of day in UTC to the millisecond (the page shows the date once)."""
    if not isinstance(moment, datetime):
        return ""
    return moment.astimezone(timezone.utc).strftime("%H:%M:%S.%f")[:-3]


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("hotmesh_sync.ui", "templates"),
        autoescape=select_autoescape(["html"], default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["clock"] = _clock
    env.filters["json"] = presenters.short_json
    env.filters["pretty"] = presenters.pretty_json
    env.filters["duration"] = presenters.duration
    env.globals["span"] = presenters.span
    env.globals["link"] = link
    env.globals["error_view"] = presenters.error_view
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
