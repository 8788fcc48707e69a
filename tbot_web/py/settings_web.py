"""Admin-only settings page: edits go through the config API (validated as a whole file, re-encrypted,
audited by it); nothing is saved when anything is invalid, and secret values are never rendered."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from tbot_bot.core.audit import log_system_event
from tbot_bot.core.users import Role
from tbot_bot.errors import ConfigError

from .auth_web import activity, current_user, now, requires, state

bp = Blueprint("settings", __name__)


def _items() -> list[tuple[str, str, bool]]:
    api = state().settings.api
    text = api.read_env_text(state().home)
    return [(str(k), str(v), bool(secret)) for k, v, secret in api.masked_items(text)]


@bp.route("/settings", methods=["GET", "POST"])
@requires(Role.ADMIN)
def page() -> Any:
    try:
        items = _items()
    except ConfigError as exc:
        return render_template("settings.html", items=[], errors=exc.problems, submitted={}), 503
    if request.method == "GET":
        return render_template("settings.html", items=items, errors=[], submitted={})

    updates: dict[str, str] = {}
    problems: list[str] = []
    submitted: dict[str, str] = {}
    for key, shown, secret in items:
        field = f"value__{key}"
        if field not in request.form:
            continue
        value = request.form[field].strip()
        if any(ch in value for ch in "\r\n\x00"):
            problems.append(f"{key}: a value must be on one line")
            continue
        if secret:
            # a blank secret field means "keep the stored value"; secrets are never echoed back
            if value:
                updates[key] = value
        else:
            submitted[key] = value
            if value != shown:
                updates[key] = value
    if problems:
        return render_template("settings.html", items=items, errors=problems, submitted=submitted), 400
    if not updates:
        flash("Nothing changed.", "info")
        return redirect(url_for("settings.page"))

    user = current_user()
    actor = f"web:{user.username}" if user else "web"
    try:
        state().settings.api.update_env_values(state().home, updates, actor=actor)
    except ConfigError as exc:
        activity("settings_rejected", user.username if user else None, ", ".join(sorted(updates)))
        return render_template("settings.html", items=items, errors=exc.problems, submitted=submitted), 400
    state().settings.invalidate()
    changed = ", ".join(sorted(updates))
    activity("settings_changed", user.username if user else None, changed)
    try:
        log_system_event(
            state().home, source="web", event="settings_changed", actor=actor, detail=changed, now=now()
        )
    except ConfigError:
        pass  # SYSTEM_LOGS.db missing; the config API keeps its own audit record
    flash(f"Saved and re-encrypted: {changed}.", "info")
    return redirect(url_for("settings.page"))
