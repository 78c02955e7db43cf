#!/bin/sh
# photos-backup: the photos' copy (service photos-backup, as root with no capability; the media
# volume read-only). Each change to the photos is in a restic snapshot within seconds: this VM's
# repository (the photos-archive volume) and, with OPS_BACKUP_REMOTE, the remote's, both
# encrypted with the backup key. inotify wakes it; DEBOUNCE_S gathers an upload's files into one
# snapshot. The outcome of the last attempt per repository is in STATUS_DIR, which ./ops backups
# reads; the heartbeat there is the health check's.
set -eu

# shellcheck source=postgres/backup-env.sh
. /usr/local/bin/backup-env
backup_prepare root
backup_exports
export RESTIC_PASSWORD_FILE="$backup_key_file" RESTIC_CACHE_DIR=/tmp/restic-cache

media=/srv/media
status_dir=/tmp/photos-backup
debounce_s=5
wait_s=30
mkdir -p "$status_dir"

# restic_in NAME ARGS...: restic against the repository NAME (local or remote).
restic_in() {
  name=$1
  shift
  if [ "$name" = local ]; then
    restic --repo "$restic_local_repository" "$@"
  else
    restic --repo "$RESTIC_REMOTE_REPOSITORY" --option sftp.args="$restic_ssh_args" "$@"
  fi
}

repositories() {
  echo local
  [ -z "${RESTIC_REMOTE_REPOSITORY:-}" ] || echo remote
}

# snapshot NAME: one snapshot of the photos in NAME (its repository made first if need be);
# the outcome in STATUS_DIR/NAME: "ok <epoch>" or "failed <epoch> <reason>".
snapshot() {
  # restic exits 11 when it cannot lock the repository (./ops backup's pruning holds it a
  # while): it exists then, and an init would only log that its config file already does.
  read_status=0
  restic_in "$1" cat config >/dev/null 2>&1 || read_status=$?
  if [ "$read_status" -ne 0 ] && [ "$read_status" -ne 11 ]; then
    restic_in "$1" init --quiet || true
  fi
  # A snapshot cut off (the remote gone mid-way) leaves its lock, which would hold ./ops
  # backup's pruning for restic's 30 minutes: after a failure, the locks of this container's
  # processes that are gone are removed first (restic unlock leaves live ones).
  if grep -qs '^failed' "$status_dir/$1"; then
    restic_in "$1" unlock --quiet >/dev/null 2>&1 || true
  fi
  # A restore's staged and set-aside folders (scripts/media_volume.py) are not photos yet.
  # --retry-lock: ./ops backup's pruning (photos-restore forget) holds the repository a while.
  if output=$(restic_in "$1" backup --quiet --host catcollector --tag photos --retry-lock 5m \
    --skip-if-unchanged --exclude "$media/.restore-*" "$media" 2>&1); then
    echo "ok $(date +%s)" >"$status_dir/$1"
  else
    echo "failed $(date +%s) $(printf '%s' "$output" | tail -n 1)" >"$status_dir/$1"
    echo "photos-backup: $1 repository: $(printf '%s' "$output" | tail -n 1)" >&2
  fi
}

# A stop (docker stop's SIGTERM) ends a wait at once; a snapshot under way finishes first, within
# the service's stop_grace_period, so no repository keeps its lock. Without the trap, sh as PID 1
# ignores SIGTERM and every stop of the stack waited the whole grace period for the SIGKILL.
stopping=no
waiting=
trap 'stopping=yes; [ -z "$waiting" ] || kill "$waiting" 2>/dev/null || true' TERM INT

# pause COMMAND...: COMMAND's exit status, or the end of this script if a stop comes meanwhile
# (run in the background, since sh runs a trap only once a foreground command has ended).
pause() {
  [ "$stopping" = no ] || exit 0
  "$@" &
  waiting=$!
  [ "$stopping" = no ] || kill "$waiting" 2>/dev/null || true
  paused=0
  wait "$waiting" || paused=$?
  waiting=
  [ "$stopping" = no ] || exit 0
  return "$paused"
}

pending=yes
while true; do
  if [ "$pending" = yes ]; then
    pending=no
    for repository in $(repositories); do
      snapshot "$repository"
    done
  fi
  touch "$status_dir/heartbeat"
  # A change (or a repository that failed last time, tried again): a snapshot after DEBOUNCE_S.
  if pause inotifywait --quiet --quiet --recursive --timeout "$wait_s" \
    --event close_write,moved_to,moved_from,delete,create "$media"; then
    pause sleep "$debounce_s"
    pending=yes
  fi
  grep -qs '^failed' "$status_dir"/local "$status_dir"/remote && pending=yes
done
