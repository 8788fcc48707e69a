-- USER_ACTIVITY_MONITORING.db: audit trail of dashboard activity (who, what, from where, which browser).
CREATE TABLE IF NOT EXISTS schema_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS user_activity (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp  TEXT NOT NULL,
    username   TEXT,
    event      TEXT NOT NULL,
    ip         TEXT,
    user_agent TEXT,
    session_id TEXT,
    detail     TEXT
);
CREATE INDEX IF NOT EXISTS ix_user_activity_timestamp ON user_activity (timestamp);
CREATE INDEX IF NOT EXISTS ix_user_activity_username ON user_activity (username);
