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
