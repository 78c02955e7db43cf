#!/bin/sh
# Sourced (`. backup-env`) by the database's entrypoint and the photos' copy: the remote copy's
# settings, from one setting, OPS_BACKUP_REMOTE (docs/operations.md, Backups). Empty: the
# archives stay on this VM only. sftp://USER@HOST[:PORT]/PATH: pgBackRest's second repository is
# PATH/pgbackrest on that server and restic's PATH/photos, both encrypted with the stack's
# backup key (the secrets volume's backup_key), so the server can neither read nor forge them.
# The SSH key and the server's host key come as compose secrets (OPS_BACKUP_SSH_KEY,
# OPS_BACKUP_KNOWN_HOSTS); the host key is checked, never trusted on first use.
# A bad value is one `error:` line and exit 3, like every setting of the stack.
# shellcheck shell=sh disable=SC2034 # the variables are the sourcing scripts'

backup_key_file=/run/secrets/catcollector/backup_key
ssh_key_secret=/run/secrets/backup_ssh_key
known_hosts_secret=/run/secrets/backup_known_hosts
# Copies readable by the user that runs pgBackRest or restic (a tmpfs of the container's own).
backup_ssh_dir=/run/backup-ssh
# restic's repository on this VM (the photos-archive volume), and how it reaches the remote's.
restic_local_repository=/var/lib/restic
restic_ssh_args="-i $backup_ssh_dir/id -o IdentitiesOnly=yes -o BatchMode=yes \
-o StrictHostKeyChecking=yes -o UserKnownHostsFile=$backup_ssh_dir/known_hosts"

backup_fail() {
  echo "error: $*" >&2
  exit 3
}

# The parts of OPS_BACKUP_REMOTE, into remote_user, remote_host, remote_port, remote_path.
backup_parse_remote() {
  case $OPS_BACKUP_REMOTE in
    sftp://*) ;;
    *) backup_fail "OPS_BACKUP_REMOTE='$OPS_BACKUP_REMOTE' is not a remote this stack can write" \
      "to; use sftp://USER@HOST[:PORT]/PATH" ;;
  esac
  rest=${OPS_BACKUP_REMOTE#sftp://}
  authority=${rest%%/*}
  remote_path=/${rest#*/}
  [ "$authority" != "$rest" ] && [ "$remote_path" != / ] ||
    backup_fail "OPS_BACKUP_REMOTE='$OPS_BACKUP_REMOTE' names no folder; add its absolute path"
  case $authority in
    *@*) remote_user=${authority%%@*} host_port=${authority#*@} ;;
    *) backup_fail "OPS_BACKUP_REMOTE='$OPS_BACKUP_REMOTE' names no user; sftp://USER@HOST/PATH" ;;
  esac
  remote_host=${host_port%:*}
  remote_port=22
  [ "$remote_host" = "$host_port" ] || remote_port=${host_port##*:}
  printf '%s' "$remote_user$remote_host" | grep -Eqx '[A-Za-z0-9_.-]+' ||
    backup_fail "OPS_BACKUP_REMOTE='$OPS_BACKUP_REMOTE': the user and host may hold letters," \
      "digits, dots, dashes and underscores only"
  case $remote_port in
    '' | *[!0-9]*) backup_fail "OPS_BACKUP_REMOTE='$OPS_BACKUP_REMOTE': the port is not a number" ;;
  esac
}

# As root, at a container's start: copy the SSH key, the known host keys and the backup key
# where OWNER (a user name) alone can read them (mode 0600), for backup_exports. The folder is a
# tmpfs of root's that compose mounts with mode 0711: OWNER reaches the files by name.
backup_prepare() {
  [ -n "${OPS_BACKUP_REMOTE:-}" ] || return 0
  backup_parse_remote
  [ -s "$backup_key_file" ] || backup_fail "$backup_key_file is missing; init-secrets makes it"
  [ -s "$ssh_key_secret" ] || backup_fail "OPS_BACKUP_REMOTE is set but OPS_BACKUP_SSH_KEY is not" \
    "(the private key that may log in to $remote_host)"
  [ -s "$known_hosts_secret" ] || backup_fail "OPS_BACKUP_REMOTE is set but OPS_BACKUP_KNOWN_HOSTS" \
    "is not (a known_hosts file with $remote_host's host key: ssh-keyscan -p $remote_port" \
    "$remote_host, checked against the server's own fingerprint)"
  for file in "$ssh_key_secret:id" "$known_hosts_secret:known_hosts" "$backup_key_file:backup_key"; do
    target=$backup_ssh_dir/${file#*:}
    cp "${file%:*}" "$target"
    # Mode first: once the file is OWNER's, root without CAP_FOWNER may not change it.
    chmod 0600 "$target"
    chown "$1" "$target"
  done
}

# Export pgBackRest's and restic's settings (the remote's when there is one), as the user
# backup_prepare gave the files to.
backup_exports() {
  # The stanza: this stack's cluster, whatever the compose project is called, so a new VM
  # restoring from the remote finds it.
  export PGBACKREST_STANZA=catcollector
  [ -n "${OPS_BACKUP_REMOTE:-}" ] || return 0
  backup_parse_remote
  export PGBACKREST_REPO2_TYPE=sftp \
    PGBACKREST_REPO2_PATH="$remote_path/pgbackrest" \
    PGBACKREST_REPO2_SFTP_HOST="$remote_host" \
    PGBACKREST_REPO2_SFTP_HOST_PORT="$remote_port" \
    PGBACKREST_REPO2_SFTP_HOST_USER="$remote_user" \
    PGBACKREST_REPO2_SFTP_PRIVATE_KEY_FILE="$backup_ssh_dir/id" \
    PGBACKREST_REPO2_SFTP_HOST_KEY_CHECK_TYPE=strict \
    PGBACKREST_REPO2_SFTP_HOST_KEY_HASH_TYPE=sha256 \
    PGBACKREST_REPO2_SFTP_KNOWN_HOST="$backup_ssh_dir/known_hosts" \
    PGBACKREST_REPO2_CIPHER_TYPE=aes-256-cbc \
    PGBACKREST_REPO2_RETENTION_FULL_TYPE=time \
    PGBACKREST_REPO2_RETENTION_FULL=14 \
    PGBACKREST_REPO2_BUNDLE=y \
    PGBACKREST_REPO2_BLOCK=y \
    RESTIC_REMOTE_REPOSITORY="sftp://$remote_user@$remote_host:$remote_port/$remote_path/photos"
  PGBACKREST_REPO2_CIPHER_PASS=$(cat "$backup_ssh_dir/backup_key")
  export PGBACKREST_REPO2_CIPHER_PASS
}
