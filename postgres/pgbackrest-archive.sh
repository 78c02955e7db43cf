#!/bin/sh
# pgbackrest-archive PATH: PostgreSQL's archive_command (pgBackRest's backup checks that the
# command names it). Hands one finished WAL segment to pgBackRest, which copies it to every
# repository (this VM's, and the remote's when OPS_BACKUP_REMOTE is set).
# A failure leaves the segment in pg_wal and PostgreSQL tries again: nothing is lost while the
# remote is away. A repository without the stanza yet (a new cluster, a remote just added) gets
# it first, at most every 15 seconds.
set -eu

# shellcheck source=postgres/backup-env.sh
. /usr/local/bin/backup-env
backup_exports
pgbackrest archive-push "$1" && exit 0
marker=/tmp/pgbackrest/stanza-create-tried
mkdir -p /tmp/pgbackrest
if [ -z "$(find "$marker" -newermt "-15 seconds" 2>/dev/null)" ]; then
  touch "$marker"
  pgbackrest stanza-create && exec pgbackrest archive-push "$1"
fi
exit 1
