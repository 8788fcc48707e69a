-- LEDGER_STATUS.db: system-wide ledger states (open, locked, closed) as seen by this bot home.
CREATE TABLE IF NOT EXISTS schema_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_status (
    ledger_name TEXT PRIMARY KEY,
    status      TEXT NOT NULL CHECK (status IN ('open', 'locked', 'closed')),
    locked_by   TEXT,
    reason      TEXT,
    updated_at  TEXT NOT NULL
);
-- Chain-head anchor of each ledger (tbot_bot/accounting/ledger_anchor.py): JSON + HMAC-SHA256 under storage/keys/ledger.key.
CREATE TABLE IF NOT EXISTS ledger_anchor (
    ledger_name TEXT PRIMARY KEY,
    seq         INTEGER NOT NULL,
    anchor_json TEXT NOT NULL,
    hmac        TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
