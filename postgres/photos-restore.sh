#!/bin/sh
# photos-restore COMMAND: the photos' restic snapshots, for ./ops restore --time and ./ops recover,
# run as root in a one-off container of the photos-restore service (the media volume writable).
#
#   snapshots REPO        the photos' snapshots in REPO (local or remote), restic's JSON
#   check REPO            every byte of REPO read back and authenticated (restic check)
#   stage REPO SNAPSHOT   SNAPSHOT's photos into the media volume's staged folder, where
#                         scripts/media_volume.py swaps them in (REPO: local or remote)
#   into REPO SNAPSHOT    SNAPSHOT's photos straight into an empty media volume (a new VM)
#   forget REPO DAYS      snapshots older than DAYS days before REPO's newest removed (the newest
#                         always stays), and the data no snapshot needs any more
set -eu

# shellcheck source=postgres/backup-env.sh
. /usr/local/bin/backup-env
backup_prepare root
backup_exports
export RESTIC_PASSWORD_FILE="$backup_key_file" RESTIC_CACHE_DIR=/tmp/restic-cache

media=/srv/media
# scripts/media_volume.py's STAGED folder.
staged=$media/.restore-incoming

fail() {
  echo "photos-restore: $*" >&2
  exit 1
}

restic_in() {
  name=$1
  shift
  case $name in
    local) restic --repo "$restic_local_repository" "$@" ;;
    remote)
      [ -n "${RESTIC_REMOTE_REPOSITORY:-}" ] || fail "OPS_BACKUP_REMOTE is not set"
      restic --repo "$RESTIC_REMOTE_REPOSITORY" --option sftp.args="$restic_ssh_args" "$@"
      ;;
    *) fail "no repository '$name': local or remote" ;;
  esac
}

# restore REPO SNAPSHOT FOLDER: the snapshot's copy of the media volume into FOLDER.
restore() {
  mkdir -p "$3"
  restic_in "$1" restore --quiet "$2:$media" --target "$3" ||
    fail "restic could not restore snapshot $2 from the $1 repository"
  # FOLDER is root's when this made it: the media volume's owner (the app user) moves its
  # entries in (scripts/media_volume.py swap).
  chown "$(stat -c %u:%g "$media")" "$3"
}

case ${1:-} in
  snapshots)
    [ $# = 2 ] || fail "usage: photos-restore snapshots REPO"
    restic_in "$2" snapshots --json --host catcollector --tag photos
    ;;
  check)
    [ $# = 2 ] || fail "usage: photos-restore check REPO"
    restic_in "$2" check --read-data --quiet || fail "the $2 repository of the photos is damaged"
    echo "the $2 repository of the photos reads back whole"
    ;;
  stage)
    [ $# = 3 ] || fail "usage: photos-restore stage REPO SNAPSHOT"
    rm -rf "$staged"
    restore "$2" "$3" "$staged"
    echo "staged: $(find "$staged" -type f | wc -l) photos of snapshot $3 ($2)"
    ;;
  into)
    [ $# = 3 ] || fail "usage: photos-restore into REPO SNAPSHOT"
    [ -z "$(find "$media" -mindepth 1 -maxdepth 1)" ] || fail "$media is not empty"
    restore "$2" "$3" "$media"
    echo "restored: $(find "$media" -type f | wc -l) photos of snapshot $3 ($2)"
    ;;
  forget)
    [ $# = 3 ] || fail "usage: photos-restore forget REPO DAYS"
    # --retry-lock: photos-backup may be writing a snapshot; prune waits for it.
    restic_in "$2" forget --quiet --host catcollector --tag photos --keep-within "$3d" \
      --keep-last 1 --prune --retry-lock 10m || fail "restic could not prune the $2 repository"
    echo "kept the $2 repository's snapshots of the last $3 day(s)"
    ;;
  *) fail "usage: photos-restore snapshots|check|stage|into|forget ..." ;;
esac
