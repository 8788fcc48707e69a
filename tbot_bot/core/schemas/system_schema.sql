-- SYSTEM.db: home-wide schema version and creation time. Bot settings live in .env_bot.enc (versioned in
-- env_bot.versioned/, audited in logs/config_audit.log), never in a second store (architecture.md, issue 23).
CREATE TABLE IF NOT EXISTS schema_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
