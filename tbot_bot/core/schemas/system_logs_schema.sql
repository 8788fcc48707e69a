-- SYSTEM_LOGS.db: centralised system event and audit log (config changes, control actions, user admin).
CREATE TABLE IF NOT EXISTS schema_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS system_logs (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp TEXT NOT NULL,
    source    TEXT NOT NULL,
    level     TEXT NOT NULL CHECK (level IN ('debug', 'info', 'warning', 'error', 'critical')),
    actor     TEXT,
    event     TEXT NOT NULL,
    detail    TEXT
);
CREATE INDEX IF NOT EXISTS ix_system_logs_timestamp ON system_logs (timestamp);
