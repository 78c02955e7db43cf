#!/bin/sh
# restore-check NAME: proves this VM's archive restores. pgBackRest restores the newest base
# backup into the scratch volume and replays the WAL up to the restore point NAME (made by
# scripts/restore_point.py); a private PostgreSQL (no network, no archiving: it never writes to
# the repository) opens it, and the row count of every table is printed as JSON, for ./ops backup
# to compare with the counts taken at that point. The scratch copy is removed at the end, whatever
# happened. Runs as the postgres user in the restore-check service. Exit 1 with one line on failure.
set -eu

scratch=/var/lib/postgresql/scratch/data
log=/var/lib/postgresql/scratch/postgresql.log
socket=/tmp/restore-check
# Recovery replays at most the WAL of one day's writes; a larger archive takes longer.
recovery_timeout_s=3600
counts="SELECT coalesce(json_object_agg(schemaname || '.' || relname, (xpath('/row/n/text()',
  query_to_xml(format('SELECT count(*) AS n FROM %I.%I', schemaname, relname), false, true, '')
  ))[1]::text::bigint), '{}') FROM pg_stat_user_tables WHERE schemaname NOT LIKE 'pg\_temp%'"

fail() {
  echo "restore-check: $*" >&2
  exit 1
}

# stop_and_remove: the private server stopped and the scratch copy gone (on every exit).
stop_and_remove() {
  pg_ctl --pgdata="$scratch" --mode=immediate stop >/dev/null 2>&1 || true
  rm -rf "$scratch" "$log"
}

# sql QUERY: one value from the scratch database.
sql() {
  psql --no-psqlrc --tuples-only --no-align --host="$socket" --username="$POSTGRES_USER" \
    --dbname="$POSTGRES_DB" --command="$1"
}

# opened: recovery reached NAME and the server promoted itself (it accepts writes).
opened() {
  [ "$(sql 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]
}

main() {
  server_options="-c listen_addresses='' -c unix_socket_directories=$socket -c archive_mode=off"
  server_options="$server_options -c shared_buffers=64MB"
  [ $# = 1 ] || fail "usage: restore-check RESTORE_POINT"
  trap stop_and_remove EXIT
  stop_and_remove
  mkdir -m 0700 "$scratch"
  mkdir -p "$socket"
  pgbackrest --stanza=catcollector --repo=1 restore --pg1-path="$scratch" --type=name \
    --target="$1" --target-action=promote \
    --recovery-option="restore_command=pgbackrest --stanza=catcollector --repo=1 --pg1-path=$scratch archive-get %f \"%p\"" ||
    fail "pgBackRest could not restore this VM's newest base backup (its lines above say why)"
  pg_ctl --pgdata="$scratch" --log="$log" --wait --timeout="$recovery_timeout_s" \
    --options="$server_options" start >/dev/null ||
    fail "the restored copy did not start: $(grep -m 1 -E 'FATAL|ERROR' "$log" || tail -n 1 "$log")"
  waited=0
  until opened; do
    if [ "$waited" -ge "$recovery_timeout_s" ] || ! pg_ctl --pgdata="$scratch" status >/dev/null; then
      fail "recovery did not reach $1: $(grep -m 1 -E 'FATAL|ERROR' "$log" || tail -n 1 "$log")"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  sql "$counts"
}

main "$@"
