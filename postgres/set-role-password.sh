#!/bin/sh
# set-role-password: the database role's password set to this stack's (POSTGRES_PASSWORD_FILE),
# over the socket. A cluster restored from another VM's archive (./ops recover) still carries
# that VM's password, which web here does not have.
set -eu

printf "ALTER ROLE CURRENT_USER PASSWORD :'password';\n" |
  psql --no-psqlrc --quiet --set=ON_ERROR_STOP=1 --username="$POSTGRES_USER" --dbname=postgres \
    --set=password="$(cat "$POSTGRES_PASSWORD_FILE")"
echo "set-role-password: $POSTGRES_USER's password is this stack's"
