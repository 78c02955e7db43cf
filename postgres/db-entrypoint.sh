#!/bin/sh
# The database container's entrypoint: the remote copy's key files given to the postgres user
# (backup-env), then the official image's entrypoint, which initialises the cluster on first start
# and starts PostgreSQL as that user.
set -eu

# shellcheck source=postgres/backup-env.sh
. /usr/local/bin/backup-env
backup_prepare postgres
exec docker-entrypoint.sh "$@"
