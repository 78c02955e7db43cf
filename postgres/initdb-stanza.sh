#!/bin/sh
# initdb-stanza: run once by the official image's entrypoint, on a new cluster, while its
# temporary server is up (socket only): pgBackRest's stanza is made then, so the cluster's first
# segment, archived as that server shuts down, goes straight in. Without it the attempt came
# during the shutdown, when pgBackRest could no longer connect to make the stanza: every new
# cluster's first start waited out PostgreSQL's retries (about 5 s) and logged errors until a
# later attempt made it. A repository out of reach now (a remote away) is left to
# pgbackrest-archive, which makes the stanza once it can: a new cluster starts anyway.
set -eu

# shellcheck source=postgres/backup-env.sh
. /usr/local/bin/backup-env
backup_exports
if ! output=$(pgbackrest stanza-create 2>&1); then
  echo "initdb-stanza: no stanza yet, pgbackrest-archive makes it later: $(printf '%s' "$output" | tail -n 1)" >&2
fi
