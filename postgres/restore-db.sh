#!/bin/sh
# restore-db COMMAND: the database's data folder for ./ops restore --time and ./ops recover, run
# by backup-run (as the postgres user, the remote's settings exported) in a one-off container of
# the db service while PostgreSQL is stopped.
#
#   stage REPO TARGET   pgBackRest's restore into a new folder beside the data (.restore-incoming):
#                       REPO 1 (this VM) or 2 (the remote); TARGET `latest` (the end of the
#                       archive) or a time `YYYY-MM-DD HH:MM:SS+00`; recovery stops there and
#                       promotes
#   swap                the staged data becomes the data folder's, the current one is set aside
#   reset               undoes swap if it ran and removes what was staged: the folder as before
#   finish              removes what swap set aside (the restore is done)
#   into REPO TARGET    the restore straight into an empty data folder (a new VM: ./ops recover)
#
# The data folder is the volume's root, a mount point that cannot be renamed: swap moves its
# entries, each one rename. Exit 1 with one line on failure.
set -eu

data=$PGDATA
incoming=$data/.restore-incoming
previous=$data/.restore-previous
# Written once every current entry is set aside, before any staged one moves in: from then on
# what the data folder holds came from the restore.
swapped=$data/.restore-swapped
# PostgreSQL fetches each segment through backup-run too, so the remote's settings apply; a
# recovery that stops short of the target fails (PostgreSQL 13 and newer) instead of opening early.
restore_command='backup-run pgbackrest archive-get %f "%p"'

fail() {
  echo "restore-db: $*" >&2
  exit 1
}

# entries FOLDER: the folder's entries, our two folders aside, one per line.
entries() {
  find "$1" -mindepth 1 -maxdepth 1 ! -name .restore-incoming ! -name .restore-previous \
    ! -name .restore-swapped
}

# restore FOLDER REPO TARGET: pgBackRest's restore of the newest backup before TARGET into
# FOLDER, recovery to TARGET, then promotion.
restore() {
  folder=$1 repo=$2 target=$3
  if [ "$target" = latest ]; then
    set -- --type=default
  else
    set -- --type=time "--target=$target" --target-action=promote
  fi
  pgbackrest restore --repo="$repo" --pg1-path="$folder" \
    --recovery-option="restore_command=$restore_command" "$@" ||
    fail "pgBackRest could not restore from repository $repo (its lines above say why)"
}

case ${1:-} in
  stage)
    [ $# = 3 ] || fail "usage: restore-db stage REPO TARGET"
    rm -rf "$incoming"
    mkdir -m 0700 "$incoming"
    restore "$incoming" "$2" "$3"
    echo "staged: the database as of $3, from repository $2"
    ;;
  swap)
    [ -d "$incoming" ] || fail "nothing staged to swap in"
    mkdir -m 0700 "$previous"
    entries "$data" | while read -r entry; do mv "$entry" "$previous/"; done
    touch "$swapped"
    entries "$incoming" | while read -r entry; do mv "$entry" "$data/"; done
    rmdir "$incoming"
    echo "swapped: the restored data is the database's; the previous data is set aside"
    ;;
  reset)
    if [ -e "$swapped" ]; then
      entries "$data" | while read -r entry; do rm -rf "$entry"; done
    fi
    if [ -d "$previous" ]; then
      entries "$previous" | while read -r entry; do mv "$entry" "$data/"; done
      rmdir "$previous"
    fi
    rm -rf "$incoming" "$swapped"
    echo "reset: the data folder is as it was before the restore"
    ;;
  finish)
    rm -rf "$previous" "$incoming" "$swapped"
    echo "finished: the previous data removed"
    ;;
  into)
    [ $# = 3 ] || fail "usage: restore-db into REPO TARGET"
    [ -z "$(entries "$data")" ] || fail "$data is not empty; this is for a new VM's first start"
    restore "$data" "$2" "$3"
    echo "restored: the database as of $3, from repository $2"
    ;;
  *) fail "usage: restore-db stage|swap|reset|finish|into ..." ;;
esac
