// Polls the small status endpoint and updates the page in place. No inline script (CSP), no library.
(function () {
  "use strict";
  var root = document.getElementById("status-root");
  if (!root) { return; }
  var api = root.getAttribute("data-api");
  var interval = Math.max(1, parseInt(root.getAttribute("data-interval"), 10) || 5) * 1000;
  var canControl = root.getAttribute("data-can-control") === "1";
  var confirmBase = root.getAttribute("data-confirm-base");
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";
  var lastUpdated = null;

  function text(id, value) {
    var el = document.getElementById(id);
    if (el) { el.textContent = (value === null || value === undefined || value === "") ? "–" : String(value); }
    return el;
  }

  function ageText(seconds) {
    if (seconds === null || seconds === undefined) { return "?"; }
    if (seconds < 120) { return Math.round(seconds) + " s"; }
    if (seconds < 7200) { return Math.round(seconds / 60) + " min"; }
    if (seconds < 172800) { return Math.round(seconds / 3600) + " h"; }
    return Math.round(seconds / 86400) + " days";
  }

  function row(cells) {
    var tr = document.createElement("tr");
    cells.forEach(function (c) {
      var td = document.createElement("td");
      if (c instanceof Node) { td.appendChild(c); } else { td.textContent = (c === null || c === undefined) ? "–" : String(c); }
      tr.appendChild(td);
    });
    return tr;
  }

  // a window time cell: exchange time above, UTC below (the server formats both)
  function times(exchange, utc) {
    var box = document.createElement("span");
    [[exchange, "t"], [utc, "t muted"]].forEach(function (pair) {
      var line = document.createElement("span");
      line.className = pair[1]; line.textContent = pair[0] || "";
      box.appendChild(line);
    });
    return box;
  }

  function fill(id, rows, empty, span) {
    var body = document.getElementById(id);
    if (!body) { return; }
    while (body.firstChild) { body.removeChild(body.firstChild); }
    if (!rows.length) {
      var tr = document.createElement("tr"), td = document.createElement("td");
      td.colSpan = span; td.className = "muted"; td.textContent = empty;
      tr.appendChild(td); body.appendChild(tr); return;
    }
    rows.forEach(function (r) { body.appendChild(r); });
  }

  function confirmForm(id) {
    var form = document.createElement("form");
    form.method = "post"; form.className = "inline";
    form.action = confirmBase.replace(/ID$/, encodeURIComponent(id));
    var token = document.createElement("input");
    token.type = "hidden"; token.name = "csrf_token"; token.value = csrf;
    var button = document.createElement("button");
    button.type = "submit"; button.textContent = "Confirm";
    form.appendChild(token); form.appendChild(button);
    return form;
  }

  // show or hide a notice the page carries (hidden when it does not apply)
  function notice(id, shown) {
    var el = document.getElementById(id);
    if (el) { el.classList.toggle("hidden", !shown); }
    return el;
  }

  // the Money card: what `tbot status` prints on its money and float lines (status.json `money`)
  function renderMoney(s) {
    var m = s.money || {};
    text("money-equity", m.equity);
    text("money-cash", m.cash);
    text("money-read-at", s.account_read_text);
    var error = document.getElementById("money-error");
    if (error) { error.textContent = m.account_error ? " (last read failed: " + m.account_error + ")" : ""; }
    text("money-exposure", m.open_exposure);
    text("money-net", m.net_pnl_today || s.net_pnl);
    text("money-float", m.float);
    text("money-cap", m.session_cap);
    var windows = m.windows || {};
    fill("money-windows", Object.keys(windows).map(function (name) {
      var w = windows[name] || {};
      var tr = row([name, w.trades + " / " + w.max_trades, w.cap_used, w.cap_available]);
      [1, 2, 3].forEach(function (i) { tr.children[i].className = "num"; });
      return tr;
    }), "no window has started today", 4);
  }

  function render(s) {
    var state = text("state", s.state);
    if (state) { state.className = "big state-" + (s.state || "unknown"); }
    text("active-strategy", s.active_strategy || "none");
    text("session-date", s.session_date);
    text("realized-pnl", s.realized_pnl);
    text("gross-pnl", s.gross_pnl);
    text("fees", s.fees);
    text("updated-at", s.updated_text);
    text("age", ageText(s.written_age_seconds));
    var replay = document.getElementById("replay-banner");
    if (replay) { replay.classList.toggle("hidden", !s.replay_day); text("replay-day", s.replay_day || ""); }
    // a stale status: a supervisor that stopped writing, or none left at all (killed: its last state is not true)
    var ended = s.supervisor_running === false;
    var stale = document.getElementById("stale-banner");
    if (stale) {
      stale.classList.toggle("hidden", !s.stale || ended);
      text("stale-state", s.state);
      text("stale-age", ageText(s.written_age_seconds));
    }
    var endedBanner = document.getElementById("ended-banner");
    if (endedBanner) {
      endedBanner.classList.toggle("hidden", !s.stale || !ended);
      text("ended-state", s.state);
      text("ended-age", ageText(s.written_age_seconds));
    }
    notice("no-supervisor", ended);
    text("start-command", s.start_command || "");
    notice("trading-stopped", !!s.trading_stopped);
    text("trading-stopped-text", s.trading_stopped_text || s.trading_stopped);
    notice("entries-paused", !!s.paused);
    text("paused-text", s.paused_text || s.paused);
    var message = notice("bot-message", !!s.message);
    if (message) { message.textContent = s.message || ""; }
    renderMoney(s);
    var broker = s.broker || {};
    var health = text("broker-health", broker.name ? broker.name + (broker.healthy ? " healthy" : " unhealthy") : "–");
    if (health) { health.className = broker.healthy ? "ok" : "bad"; }
    var brokerError = document.getElementById("broker-error");
    if (brokerError) { brokerError.textContent = broker.last_error || ""; }
    text("api-retries", (s.api || {}).retries || 0);
    text("api-errors", (s.api || {}).errors || 0);
    text("defense-mode", s.defense_mode ? "on (" + (s.defense_reason || "active") + ")" : "off");
    notice("defense-clear", !!s.defense_mode);
    var ks = s.kill_switch || {};
    text("kill-switch", ks.tripped ? "tripped: " + (ks.reason || "") : "armed");
    text("version", s.version || "");
    var err = document.getElementById("status-error");
    if (err) { err.textContent = s.error || ""; err.classList.toggle("hidden", !s.error); }
    var stop = document.getElementById("stop-requested");
    if (stop) { stop.classList.toggle("hidden", !s.stop_requested); }
    var conditions = document.getElementById("conditions");
    if (conditions) {
      var items = s.conditions || [];
      conditions.textContent = "";
      items.forEach(function (c) { var li = document.createElement("li"); li.textContent = c; conditions.appendChild(li); });
      conditions.classList.toggle("hidden", items.length === 0);
    }

    var counts = s.counts || {};
    fill("windows-body", (s.windows || []).map(function (w) {
      var c = counts[w.strategy] || {};
      var tr = row([w.strategy, w.status, times(w.sched_exchange, w.sched_utc),
        times(w.actual_exchange, w.actual_utc), c.signaled || 0, c.entered || 0, c.exited || 0, w.note]);
      [4, 5, 6].forEach(function (i) { tr.children[i].className = "num"; });
      return tr;
    }), "no windows scheduled", 8);
    fill("positions-body", (s.positions || []).map(function (p) {
      return row([p.symbol, p.strategy, p.direction === 'bearish' ? p.side + ' (bearish)' : p.side, p.qty, p.entry_price, p.last_price, p.unrealized_pnl]);
    }), "no open positions", 7);
    fill("pending-body", (s.pending_confirmations || []).map(function (p) {
      var cells = [p.client_order_id, p.symbol, p.strategy, p.expires_text];
      if (canControl) { cells.push(p.confirmable ? confirmForm(p.client_order_id) : "not a valid order id"); }
      return row(cells);
    }), "none", 5);

    if (s.updated_at !== lastUpdated) {
      lastUpdated = s.updated_at;
      ["pnl", "trades"].forEach(function (kind) {
        var img = document.getElementById("chart-" + kind);
        if (img) { img.src = root.getAttribute("data-chart-" + kind) + "?t=" + encodeURIComponent(s.updated_at || ""); }
      });
    }
  }

  // a failed read is said: the figures on the page are then as of the last read, not live
  function unreachable(failed) {
    var banner = notice("unreachable-banner", failed);
    if (failed && banner) { text("unreachable-at", new Date().toISOString().slice(11, 19) + "Z"); }
  }

  function poll() {
    fetch(api, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        if (r.status === 401) { window.location.href = "/login"; return null; }
        if (!r.ok) { unreachable(true); return null; }
        return r.json();
      })
      .then(function (s) { if (s) { unreachable(false); render(s); } })
      .catch(function () { unreachable(true); /* a slow or dropped link: try again next tick */ })
      .then(function () { window.setTimeout(poll, interval); });
  }
  window.setTimeout(poll, interval);
}());
