-- SYSTEM_USERS.db: the sole source of truth for dashboard logins. Passwords are bcrypt hashes only.
CREATE TABLE IF NOT EXISTS schema_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS system_users (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    username            TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash       TEXT NOT NULL,
    role                TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'auditor', 'viewer')),
    is_active           INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    failed_attempts     INTEGER NOT NULL DEFAULT 0,
    locked_until        TEXT,
    password_changed_at TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    created_by          TEXT NOT NULL,
    last_login_at       TEXT
);
-- Failed sign-ins per (name, client): a lockout never reaches other clients, so no one can lock the admin out.
-- name_key is a hash of the lower-cased name typed, so a password typed into the name box is never stored.
CREATE TABLE IF NOT EXISTS login_failures (
    name_key        TEXT NOT NULL,
    client          TEXT NOT NULL,
    failures        INTEGER NOT NULL DEFAULT 0,
    lockouts        INTEGER NOT NULL DEFAULT 0,
    locked_until    TEXT,
    last_attempt_at TEXT NOT NULL,
    PRIMARY KEY (name_key, client)
);
-- Dashboard sessions carry the user's generation; logout, a password or role change and disabling bump it,
-- which ends every session of that user at once.
CREATE TABLE IF NOT EXISTS session_generations (
    username   TEXT PRIMARY KEY COLLATE NOCASE,
    generation INTEGER NOT NULL DEFAULT 0
);
