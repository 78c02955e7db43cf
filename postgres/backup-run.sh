#!/bin/sh
# backup-run COMMAND...: COMMAND (pgbackrest ...) with the remote copy's settings (backup-env), as
# the postgres user: what ./ops runs in the database container, or in a one-off container of its
# image (a restore), where this prepares the key files first.
set -eu

# shellcheck source=postgres/backup-env.sh
. /usr/local/bin/backup-env
if [ "$(id -u)" = 0 ]; then
  backup_prepare postgres
  backup_exports
  exec gosu postgres "$@"
fi
backup_exports
exec "$@"
