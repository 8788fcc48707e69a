"""Admin-only settings page: edits go through the config API (validated as a whole file, re-encrypted,
audited by it); nothing is saved when anything is invalid, and secret values are never rendered."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from tbot_bot.config.key_help import key_help
from tbot_bot.config.settings_bot import StaleConfigError
from tbot_bot.core.users import Role
from tbot_bot.errors import ConfigError

from .auth_web import activity, current_user, requires, state, system_event

bp = Blueprint("settings", __name__)


def _items() -> tuple[list[tuple[str, str, bool]], str]:
    """Every key as shown, and the version of the config they were read from (the form carries it back)."""
    api = state().settings.api
    text = api.read_env_text(state().home)
    items = [(str(k), str(v), bool(secret)) for k, v, secret in api.masked_items(text)]
    return items, api.config_version(text)


def _form(
    items: list[tuple[str, str, bool]], version: str, errors: list[str], submitted: dict[str, str]
) -> str:
    # each key's meaning (the template's comment) and what the validation allows (the same rule that checks it)
    helps = {key: key_help(key) for key, _, _ in items}
    return render_template(
        "settings.html", items=items, version=version, errors=errors, submitted=submitted, helps=helps
    )


@bp.route("/settings", methods=["GET", "POST"])
@requires(Role.ADMIN)
def page() -> Any:
    try:
        items, version = _items()
    except ConfigError as exc:
        return _form([], "", exc.problems, {}), 503
    if request.method != "POST":  # HEAD answers as GET: only a POST (CSRF-checked) may save
        return _form(items, version, [], {})
    read_version = request.form.get("config_version", "")
    if not read_version:
        return _form(items, version, ["the form did not say which version it was read from; reload"], {}), 400

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
        return _form(items, read_version, problems, submitted), 400
    if not updates:
        flash("Nothing changed.", "info")
        return redirect(url_for("settings.page"))

    user = current_user()
    actor = f"web:{user.username}" if user else "web"
    try:
        # refused when the config changed since this form was read: the other change is never overwritten
        state().settings.api.update_env_values(
            state().home, updates, actor=actor, expected_version=read_version
        )
    except ConfigError as exc:
        activity("settings_rejected", user.username if user else None, ", ".join(sorted(updates)))
        if isinstance(exc, StaleConfigError):
            # shown as it is now, without the stale input, so that a second click cannot undo the other change
            state().settings.invalidate()
            items, version = _items()
            return _form(items, version, exc.problems, {}), 409
        return _form(items, read_version, exc.problems, submitted), 400
    state().settings.invalidate()
    changed = ", ".join(sorted(updates))
    activity("settings_changed", user.username if user else None, changed)
    system_event("settings_changed", actor, changed)  # the config API keeps its own audit record too
    flash(f"Saved and re-encrypted: {changed}.", "info")
    return redirect(url_for("settings.page"))
