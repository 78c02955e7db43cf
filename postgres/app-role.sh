#!/bin/sh
# app-role: web's database role (POSTGRES_APP_USER) as it must be, whatever the database held
# before: it exists, logs in with this stack's password (POSTGRES_APP_PASSWORD_FILE), is no
# superuser and may create neither roles nor databases, owns the app's database, its public
# schema and everything in it, and may mark restore points. The db-roles service runs it at
# every `up`, ./ops where a stack predates the role and after restore --time, as the bootstrap
# superuser over the backend network: a database from another moment or VM is brought in line
# the same way. Idempotent; exit 1 with psql's line on failure.
set -eu

PGPASSWORD=$(cat "$POSTGRES_PASSWORD_FILE")
export PGPASSWORD

# Tables and views first: ALTER TABLE takes the sequences a column owns along, which then may
# not be given away on their own; the sequences left are the free-standing ones.
psql --no-psqlrc --quiet --set=ON_ERROR_STOP=1 --host="$POSTGRES_HOST" \
  --username="$POSTGRES_USER" --dbname="$POSTGRES_DB" \
  --set=role="$POSTGRES_APP_USER" --set=password="$(cat "$POSTGRES_APP_PASSWORD_FILE")" <<'SQL'
SELECT format('CREATE ROLE %I', :'role')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION '
              'NOBYPASSRLS PASSWORD %L', :'role', :'password') \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', current_database(), :'role') \gexec
-- pg_database_owner, PostgreSQL's own default, already means the role once it owns the database.
SELECT format('ALTER SCHEMA public OWNER TO %I', :'role')
  FROM pg_namespace WHERE nspname = 'public'
    AND nspowner NOT IN ('pg_database_owner'::regrole, (SELECT oid FROM pg_roles
                                                        WHERE rolname = :'role')) \gexec
SELECT format('ALTER %s %s OWNER TO %I',
              CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                             ELSE 'TABLE' END,
              c.oid::regclass, :'role')
  FROM pg_class c
  WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
    AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER SEQUENCE %s OWNER TO %I', c.oid::regclass, :'role')
  FROM pg_class c
  WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'S'
    AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = :'role') \gexec
-- ./ops backup's restore check names a point in the WAL through web's image
-- (scripts/restore_point.py): a marker, which a superuser alone may write unless granted.
GRANT EXECUTE ON FUNCTION pg_create_restore_point(text) TO :"role";
SQL
echo "app-role: $POSTGRES_APP_USER owns $POSTGRES_DB, without superuser"
