"""The plain `.env` of a bot home: environment mode, key and secret paths, login controls. No secrets."""

from __future__ import annotations

from tbot_bot.config.env_bot import parse_env_text
from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import BotHome

DOTENV_TEMPLATE = """\
# .env: top-level environment of this bot home. It names key and secret paths; it holds no secrets.
ENVIRONMENT="{environment}"             # production (plaintext .env_bot refused) or development
LOCAL="false"                            # true when running on a developer machine
CONTROL_DIR="control"                    # start/stop control files
ENV_BOT_PATH=".env_bot"                  # plaintext config (development only); .env_bot.enc is used when present

ENV_KEY_PATH="storage/keys/env.key"                     # decrypts .env_bot.enc
LOGIN_KEY_PATH="storage/keys/login.key"                 # web session secret, network config
BROKER_KEY_PATH="storage/keys/broker.key"               # decrypts broker_credentials.json.enc
SMTP_KEY_PATH="storage/keys/smtp.key"                   # decrypts smtp_credentials.json.enc
SCREENER_API_KEY_PATH="storage/keys/screener_api.key"   # decrypts screener_api.json.enc
ACCT_API_KEY_PATH="storage/keys/acct_api.key"           # decrypts acct_api_credentials.json.enc
ALERT_KEY_PATH="storage/keys/alert.key"                 # decrypts alert_channels.json.enc

BROKER_CREDENTIALS_PATH="storage/secrets/broker_credentials.json.enc"
SMTP_CREDENTIALS_PATH="storage/secrets/smtp_credentials.json.enc"
SCREENER_API_PATH="storage/secrets/screener_api.json.enc"
ACCT_API_CREDENTIALS_PATH="storage/secrets/acct_api_credentials.json.enc"
NETWORK_CONFIG_PATH="storage/secrets/network_config.json.enc"
ALERT_CHANNELS_PATH="storage/secrets/alert_channels.json.enc"

SESSION_TIMEOUT="3000"                   # seconds (legacy; SESSION_TIMEOUT_MINUTES wins)
LOGIN_ATTEMPT_LIMIT=10                   # failed logins of one name from one client before lockout; 1..1000
LOGIN_LOCKOUT_MINUTES=15                 # first lockout of a name+client, doubling on repeats (max 24 h); 1..1440
SESSION_TIMEOUT_MINUTES=120              # web session expiry after sign-in; 1..10080
WEB_COOKIE_SECURE=false                  # true: session cookie only over https, plus HSTS (set behind TLS)
WEB_TRUST_PROXY=false                    # false, true or 1-5: proxies whose X-Forwarded-For/-Proto are believed

BACKUP_KEEP=14                           # local encrypted archives kept by tbot-backup.service (tbot backup prune)
BACKUP_UPLOAD_TO=""                      # off-site target: s3://bucket/prefix, rsync://host/module/path, ssh://host/path; empty = none
BACKUP_UPLOAD_ENDPOINT=""                # S3-compatible endpoint URL (MinIO...); empty = AWS
BACKUP_UPLOAD_KEEP_DAYS=7                # remote archives older than this many days are deleted
"""


def read_dotenv(home: BotHome) -> dict[str, str]:
    if not home.dotenv.exists():
        return {}
    if not home.dotenv.is_file():
        raise ConfigError(
            f"{home.dotenv} is not a regular file; it must be the home's plain .env", source=str(home.dotenv)
        )
    try:
        text = home.dotenv.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{home.dotenv} does not hold UTF-8 text (undecodable byte at offset {exc.start})",
            source=str(home.dotenv),
        ) from None
    values, problems = parse_env_text(text)
    if problems:
        raise ConfigError(problems, source=str(home.dotenv))
    return values


def environment(home: BotHome) -> str:
    env = read_dotenv(home).get("ENVIRONMENT", "production").strip().lower()
    if env not in ("production", "development"):
        raise ConfigError(
            f"ENVIRONMENT={env!r} is not allowed: use production or development", source=str(home.dotenv)
        )
    return env
