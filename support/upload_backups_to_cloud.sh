#!/bin/sh
# Off-site copy of the encrypted backups (spec name). Usage:
#   support/upload_backups_to_cloud.sh [--home DIR] [--to s3://bucket/prefix|rsync://host/module/path|ssh://host/path]
#                                      [--endpoint URL] [--keep-days 7]
# Without --to, BACKUP_UPLOAD_TO from the home's .env is used; when neither is set it says so and exits 0, so
# tbot-backup.service can always call it. Credentials: `tbot secrets set backup_upload`.
set -eu
here=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
tbot=${TBOT:-"$here/.venv/bin/tbot"}
[ -x "$tbot" ] || tbot=tbot
home=${TBOT_HOME:-.}
has_to=no
prev=""
for arg in "$@"; do
  case "$arg" in --to|--to=*) has_to=yes ;; esac
  [ "$prev" = "--home" ] && home=$arg
  prev=$arg
done
if [ "$has_to" = no ]; then
  target=$(sed -n 's/^BACKUP_UPLOAD_TO=["]*\([^"#]*\)["]*.*$/\1/p' "$home/.env" 2>/dev/null | tr -d ' ' | tail -n 1)
  if [ -z "$target" ]; then
    echo "upload_backups_to_cloud: no BACKUP_UPLOAD_TO in $home/.env and no --to: nothing to upload"
    exit 0
  fi
fi
exec "$tbot" backup upload "$@"
