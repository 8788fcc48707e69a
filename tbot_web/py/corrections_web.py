"""Ledger corrections from the dashboard (admin only): the same plan and posting as `tbot ledger correct`.

The form must be confirmed (a ticked box) after the admin has read what will be posted; without it the plan is
shown and nothing is written. Source `dashboard`, user = the signed-in admin; both land in the ledger's memo and
audit rows, the system log and the dashboard's activity log.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, request, url_for

from tbot_bot.core.users import Role
from tbot_bot.errors import TbotError

from .auth_web import activity, current_user, requires, state

bp = Blueprint("corrections", __name__)

KINDS = ("amount", "account", "reverse")


@bp.route("/ledger/correct", methods=["POST"])
@requires(Role.ADMIN)
def correct() -> Any:
    from tbot_bot.accounting.accounting_config import load_binding
    from tbot_bot.accounting.ledger_correction import (
        parse_amount,
        plan_correction,
        plan_text,
        post_correction,
    )
    from tbot_bot.config.settings_bot import load_settings

    user = current_user()
    username = user.username if user else "web"
    form = request.form
    fitid, kind = form.get("fitid", "").strip(), form.get("kind", "")
    value, reason = form.get("value", "").strip(), form.get("reason", "").strip()[:500]
    back = redirect(url_for("history.ledger"))
    if kind not in KINDS or not fitid:
        flash(f"Not posted: give a FITID and one of {', '.join(KINDS)}.", "error")
        return back
    home = state().home
    try:
        amount = parse_amount(value) if kind == "amount" else None
        binding = load_binding(home)
        plan = plan_correction(
            binding.ledger_path, fitid, reason=reason, user=username, source="dashboard", amount=amount,
            account=value if kind == "account" else None,
            from_account=form.get("from_account", "").strip() or None,
        )  # fmt: skip
        what = plan_text(plan)
        if form.get("confirm") != "1":
            flash(f"Nothing posted yet. Check, tick 'confirm' and post again: {what}", "info")
            return back
        written, unrecorded = post_correction(
            home, binding, plan, user=username, source="dashboard",
            backup_keep=load_settings(home).LEDGER_BACKUP_KEEP,
        )  # fmt: skip
    except TbotError as exc:
        activity("ledger_correction_refused", username, f"{fitid}: {exc}"[:500])
        flash(f"Not posted: {_in_form_words(str(exc))}", "error")
        return back
    activity("ledger_correction", username, f"{what}; reason: {plan.reason}"[:500])
    flash(f"Posted {written} correction entries for {fitid}.", "info")
    if unrecorded:
        flash(f"Warning: {unrecorded}", "error")
    return back


# the correction's refusals name `tbot ledger correct`'s options; this form has fields for them
_FORM_WORDS = (
    (
        "--from-account only applies with --account",
        "'From account' only applies to 'move the non-cash leg to account'",
    ),
    ("--amount", "the amount"),
    ("--account", "account"),
    ("--from-account", "'From account'"),
    ('--reason "..."', "a reason"),
    ("--reason", "the reason"),
    ("--reverse", "'reverse only'"),
)


def _in_form_words(message: str) -> str:
    for option, field in sorted(_FORM_WORDS, key=lambda pair: -len(pair[0])):
        message = message.replace(option, field)
    return message
