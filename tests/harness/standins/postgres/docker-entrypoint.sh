#!/usr/bin/env bash
# Entrypoint of the postgres stand-in: the official image's documented behaviour, written anew.
# On an empty $PGDATA: initdb with POSTGRES_USER / POSTGRES_PASSWORD (or their _FILE forms),
# POSTGRES_INITDB_ARGS, a "host all all all" rule with POSTGRES_HOST_AUTH_METHOD (default: the
# server's password_encryption), POSTGRES_DB, then /docker-entrypoint-initdb.d/*.{sh,sql,sql.gz}
# against a socket-only temporary server. Started as root, it fixes ownership and re-executes
# itself as postgres (UID 999).
set -o errexit -o nounset -o pipefail

# Reads VAR or VAR_FILE (Docker secrets), never both.
file_env() {
  local var=$1 default=${2:-}
  local file_var="${var}_FILE"
  if [[ -n ${!var:-} && -n ${!file_var:-} ]]; then
    echo "error: both $var and $file_var are set (but are exclusive)" >&2
    exit 1
  fi
  local value=$default
  if [[ -n ${!var:-} ]]; then
    value=${!var}
  elif [[ -n ${!file_var:-} ]]; then
    value=$(<"${!file_var}")
  fi
  export "$var=$value"
  unset "$file_var"
}

wants_help() {
  local arg
  for arg; do
    case $arg in -'?' | --help | --describe-config | -V | --version) return 0 ;; esac
  done
  return 1
}

refuse_without_password() {
  if [[ -z $POSTGRES_PASSWORD && $POSTGRES_HOST_AUTH_METHOD != trust ]]; then
    cat >&2 <<'MSG'
Error: Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD to a non-empty value for the
       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
       connections without a password. This is *not* recommended.
MSG
    exit 1
  fi
  if [[ $POSTGRES_HOST_AUTH_METHOD == trust ]]; then
    echo "WARNING: POSTGRES_HOST_AUTH_METHOD=trust lets anyone who reaches port 5432 in without a password." >&2
  fi
}

prepare_directories() {
  mkdir -p "$PGDATA"
  chmod 00700 "$PGDATA" || :
  mkdir -p /var/run/postgresql || :
  chmod 03775 /var/run/postgresql || :
  if [[ $(id -u) == 0 ]]; then
    find "$PGDATA" /var/run/postgresql \! -user postgres -exec chown postgres {} +
  fi
}

sql() {
  local runner=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
  PGHOST='' PGHOSTADDR='' "${runner[@]}" "$@"
}

initialise() {
  # An empty file is not a password for --pwfile, hence the newline.
  local initdb_args
  read -r -a initdb_args <<<"$POSTGRES_INITDB_ARGS"
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") "${initdb_args[@]}"

  local auth=${POSTGRES_HOST_AUTH_METHOD:-$(postgres -C password_encryption "${@:2}")}
  printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"

  export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
  PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -w start \
    -o "$(printf '%q ' "${@:2}" -c listen_addresses='' -p "${PGPORT:-5432}")"

  if [[ -z $(sql --dbname postgres --set db="$POSTGRES_DB" --tuples-only \
    <<<"SELECT 1 FROM pg_database WHERE datname = :'db';") ]]; then
    sql --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
  fi

  local script
  shopt -s nullglob
  for script in /docker-entrypoint-initdb.d/*; do
    case $script in
      *.sh)
        if [[ -x $script ]]; then
          echo "$0: running $script"
          "$script"
        else
          echo "$0: sourcing $script"
          # shellcheck disable=SC1090
          . "$script"
        fi
        ;;
      *.sql) echo "$0: running $script" && sql --dbname "$POSTGRES_DB" -f "$script" ;;
      *.sql.gz) echo "$0: running $script" && gunzip -c "$script" | sql --dbname "$POSTGRES_DB" ;;
      *) echo "$0: ignoring $script" ;;
    esac
  done
  shopt -u nullglob

  PGUSER="${PGUSER:-postgres}" pg_ctl -D "$PGDATA" -m fast -w stop
  unset PGPASSWORD
  echo
  echo 'PostgreSQL init process complete; ready for start up.'
  echo
}

main() {
  if [[ ${1:-} == -* ]]; then
    set -- postgres "$@"
  fi
  if [[ ${1:-} == postgres ]] && ! wants_help "$@"; then
    file_env POSTGRES_PASSWORD
    file_env POSTGRES_USER postgres
    file_env POSTGRES_DB "$POSTGRES_USER"
    file_env POSTGRES_INITDB_ARGS
    : "${POSTGRES_HOST_AUTH_METHOD:=}"
    prepare_directories
    if [[ $(id -u) == 0 ]]; then
      exec gosu postgres "${BASH_SOURCE[0]}" "$@"
    fi
    if [[ -s $PGDATA/PG_VERSION ]]; then
      echo
      echo 'PostgreSQL Database directory appears to contain a database; Skipping initialization'
      echo
    else
      refuse_without_password
      initialise "$@"
    fi
  fi
  exec "$@"
}

main "$@"
