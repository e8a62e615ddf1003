"""The dashboard's actions: signal, interrupt, retry; trigger and pause schedules.

Each is a POST. The first POST (from the button) shows what will happen and
asks to confirm; the confirmed POST does it through the public API - the same
calls an application makes - and redirects back (303) with a notice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .http import BadRequest, Request

if TYPE_CHECKING:
    from ..memflow import MemFlow

#: A signal's data as typed into the page may be at most this long.
MAX_SIGNAL_DATA = 256 * 1024


@dataclass
class Action:
    """One action: what it asks, and what doing it returns (a notice code)."""

    title: str
    question: Callable[[dict[str, str]], str]
    perform: Callable[[MemFlow, dict[str, str]], str]
    #: The page to return to: "workflow" (with its id) or "schedules".
    back: str


def _signal_data(form: dict[str, str]) -> Any:
    text = form.get("data", "").strip()
    if not text:
        return None
    if len(text) > MAX_SIGNAL_DATA:
        raise BadRequest(f"the signal's data is longer than {MAX_SIGNAL_DATA} characters")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"the signal's data is not valid JSON: {exc.msg} "
                         f"(line {exc.lineno}, column {exc.colno})") from exc


def _signal_id(form: dict[str, str]) -> str:
    signal_id = form.get("signal_id", "").strip()
    if not signal_id:
        raise BadRequest("a signal needs its signal id")
    return signal_id


def _signal(mf: MemFlow, form: dict[str, str]) -> str:
    reached = mf.workflow.get_handle(form["id"]).signal(_signal_id(form), _signal_data(form))
    return "signalled" if reached else "not-signalled"


def _interrupt(mf: MemFlow, form: dict[str, str]) -> str:
    done = mf.workflow.get_handle(form["id"]).interrupt(
        reason=form.get("reason", "").strip() or "interrupted from the dashboard",
        descend=form.get("descend") == "on", force=form.get("force") == "on")
    return "interrupted" if done else "not-interrupted"


def _retry(mf: MemFlow, form: dict[str, str]) -> str:
    return "retried" if mf.workflow.get_handle(form["id"]).retry() else "not-retried"


def _trigger(mf: MemFlow, form: dict[str, str]) -> str:
    mf.schedules.trigger(form["id"])
    return "triggered"


def _pause(mf: MemFlow, form: dict[str, str]) -> str:
    mf.schedules.pause(form["id"])
    return "paused"


def _unpause(mf: MemFlow, form: dict[str, str]) -> str:
    mf.schedules.unpause(form["id"])
    return "unpaused"


def _ask_signal(form: dict[str, str]) -> str:
    data = _signal_data(form)  # bad JSON is refused before anyone confirms it
    shown = "no data" if data is None else f"data {json.dumps(data)[:200]}"
    return f"Send signal {_signal_id(form)!r} with {shown} to workflow {form['id']!r}?"


def _ask_interrupt(form: dict[str, str]) -> str:
    how = ("at once, without cleanup" if form.get("force") == "on"
           else "letting it clean up first")
    children = " and its running children" if form.get("descend") == "on" else ""
    return f"Interrupt workflow {form['id']!r}{children}, {how}?"


ACTIONS: dict[str, Action] = {
    "/workflow/signal": Action("Send a signal", _ask_signal, _signal, "workflow"),
    "/workflow/interrupt": Action("Interrupt", _ask_interrupt, _interrupt, "workflow"),
    "/workflow/retry": Action(
        "Retry", lambda f: f"Run workflow {f['id']!r} again from the step that failed?",
        _retry, "workflow"),
    "/schedule/trigger": Action(
        "Trigger", lambda f: f"Start schedule {f['id']!r}'s workflow now?", _trigger,
        "schedules"),
    "/schedule/pause": Action(
        "Pause", lambda f: f"Pause schedule {f['id']!r}?", _pause, "schedules"),
    "/schedule/unpause": Action(
        "Unpause", lambda f: f"Unpause schedule {f['id']!r}?", _unpause, "schedules"),
}


def perform(action: Action, mf: MemFlow, form: dict[str, str]) -> str:
    """Do ``action``; the library's refusals of a value (a signal id too long,
    data it cannot store) are the user's to fix: 400 with its message."""
    try:
        return action.perform(mf, form)
    except (ValueError, TypeError) as exc:
        raise BadRequest(str(exc)) from exc


def form_of(request: Request) -> dict[str, str]:
    """The action's fields (the CSRF field is the gate's, not the action's)."""
    form = {k: v for k, v in request.form.items() if k != "csrf_token"}
    if not form.get("id"):
        raise BadRequest("the action names no workflow or schedule")
    return form
