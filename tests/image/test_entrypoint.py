"""The entrypoint: commands pass through, the server waits for PostgreSQL and migrates once."""

import json
import re
import threading
import time

from tests.harness.ports import free_port
from tests.image.conftest import (
    DB_ALIAS,
    DB_PASSWORD,
    REPO,
    WEB_PORT,
    run_web,
    start_postgres,
    wait_healthy,
    web_env,
)

MIGRATE_SCRIPT = (REPO / "scripts" / "migrate.py").read_text()
MIGRATION_LOCK_ID = int(
    re.search(r"^MIGRATION_LOCK_ID = (0x[0-9A-Fa-f]+)", MIGRATE_SCRIPT, re.M)[1], 16
)


def run_once(containers, image, *command, env=None, options=(), timeout=120):
    started = time.monotonic()
    result = containers.run_once(image, *command, env=env, options=options, timeout=timeout)
    return result, time.monotonic() - started


def test_any_other_command_runs_exactly_as_given(containers, web_image):
    result, _ = run_once(containers, web_image, "echo", "hi")
    assert (result.returncode, result.stdout, result.stderr) == (0, "hi\n", "")

    result, _ = run_once(containers, web_image, "sh", "-c", "echo $0 $1; exit 7", "a", "b")
    assert (result.returncode, result.stdout) == (7, "a b\n")


def test_management_commands_pass_through_without_migrating(containers, database, web_image):
    result, _ = run_once(
        containers,
        web_image,
        "python", "manage.py", "showmigrations", "cats",
        env=web_env(database),
        options=["--network", database.network],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # Unapplied: `docker compose run web <command>` never migrates behind the operator's back.
    assert "[ ] 0001_initial" in result.stdout
    assert database.query("SELECT to_regclass('django_migrations')") == [(None,)]


# A command's process closes its database pool before its threads stop (config.pools);
# left to interpreter shutdown, the pool waited 5 s for each of its four threads.
COMMAND_EXIT_BOUND_S = 10


def test_a_command_that_queried_exits_at_once_and_quietly(containers, database, web_image):
    query = "from django.db import connection; c = connection.cursor(); c.execute('SELECT 1')"
    result, seconds = run_once(
        containers,
        web_image,
        "python", "manage.py", "shell", "-c", f"{query}; print(c.fetchone()[0])",
        env=web_env(database),
        options=["--network", database.network],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "1"
    assert "couldn't stop thread" not in result.stdout + result.stderr
    assert seconds < COMMAND_EXIT_BOUND_S


def test_a_first_run_without_configuration_says_what_to_configure(containers, web_image):
    """`docker build -t app . && docker run -p 8000:8000 app`, as a new user would."""
    port = free_port()
    result, seconds = run_once(
        containers, web_image, options=["--publish", f"127.0.0.1:{port}:{WEB_PORT}"]
    )
    assert result.returncode == 3
    assert seconds < 15
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: DJANGO_SECRET_KEY is not set")
    hint = " ".join(lines[1:])
    assert "docker compose -f compose.yaml up -d" in hint
    for variable in ("DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DATABASE_URL"):
        assert variable in hint


def test_a_run_with_a_key_but_no_database_names_the_database_variables(containers, web_image):
    env = {k: v for k, v in web_env().items() if not k.startswith("POSTGRES_")}
    result, seconds = run_once(containers, web_image, env=env)
    assert result.returncode == 3
    assert seconds < 15
    assert result.stderr.splitlines()[0] == (
        "error: no database configured; set DATABASE_URL, or POSTGRES_HOST with POSTGRES_DB, "
        "POSTGRES_USER and POSTGRES_PASSWORD"
    )
    assert "Traceback" not in result.stderr


def test_bad_server_settings_are_one_line_before_any_waiting(containers, web_image):
    """POSTGRES_HOST names a host that does not exist: the error must come first anyway."""
    env = web_env() | {"POSTGRES_HOST": DB_ALIAS, "GUNICORN_MODE": "fast"}
    result, seconds = run_once(containers, web_image, env=env)
    assert (result.returncode, result.stdout) == (3, "")
    assert result.stderr == "error: GUNICORN_MODE='fast' is not one of wsgi, asgi\n"
    assert seconds < 15

    env |= {"GUNICORN_MODE": "wsgi", "GUNICORN_THREADS": "12", "DJANGO_DB_POOL_MAX_SIZE": "8"}
    result, _ = run_once(containers, web_image, env=env)
    assert result.returncode == 3
    assert result.stderr == (
        "error: GUNICORN_THREADS=12 is more than DJANGO_DB_POOL_MAX_SIZE=8; "
        "threads would wait for database connections\n"
    )


def test_waiting_for_the_database_times_out_naming_host_port_and_last_error(containers, web_image):
    network = containers.network()
    # Something answers at the name `db`, but no PostgreSQL listens there: connection refused.
    containers.run(
        web_image, "sleep", "120", options=["--network", network, "--network-alias", DB_ALIAS]
    )
    env = web_env() | {"POSTGRES_HOST": DB_ALIAS, "DATABASE_WAIT_TIMEOUT": "4"}
    result, seconds = run_once(containers, web_image, env=env, options=["--network", network])
    assert result.returncode == 1
    assert 4 <= seconds < 20
    assert "Traceback" not in result.stderr
    [error] = result.stderr.splitlines()
    assert error.startswith(
        "error: PostgreSQL at db:5432 did not accept a connection within 4 s "
        "(DATABASE_WAIT_TIMEOUT); last error: "
    )
    assert "Connection refused" in error
    progress = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(progress) >= 3
    assert all(line["logger"] == "entrypoint.wait_for_db" for line in progress)
    assert progress[0]["message"].startswith("waiting for PostgreSQL at db:5432 (0 of 4 s): ")


def test_a_wrong_password_fails_at_once_instead_of_waiting(containers, database, web_image):
    env = web_env(database) | {"POSTGRES_PASSWORD": "wrong", "DATABASE_WAIT_TIMEOUT": "60"}
    result, seconds = run_once(
        containers, web_image, env=env, options=["--network", database.network]
    )
    assert result.returncode == 1
    assert seconds < 15
    [error] = result.stderr.splitlines()
    assert error.startswith("error: PostgreSQL at db:5432 refused the connection: ")
    assert 'password authentication failed for user "postgres"' in error


def test_the_server_waits_for_a_database_that_starts_later(containers, web_image):
    network = containers.network()
    env = {"POSTGRES_HOST": DB_ALIAS, "POSTGRES_PASSWORD": DB_PASSWORD}
    web = run_web(containers, web_image, network=network, env=env, healthy=False)
    web.container.wait_for_log(r"waiting for PostgreSQL at db:5432", timeout=30)
    start_postgres(containers, network)
    wait_healthy(web.container)
    assert web.get("/readyz").json() == {"status": "ok"}


def test_migrations_can_be_switched_off(database, web_factory):
    web = web_factory(database, env={"DJANGO_MIGRATE_ON_START": "false"})
    response = web.get("/readyz")
    assert response.status_code == 503
    assert response.json()["reason"].endswith("unapplied migration(s)")
    assert not any(line["logger"] == "entrypoint.migrate" for line in web.log_lines())


def test_a_bad_migrate_switch_is_one_line(containers, database, web_image):
    env = web_env(database) | {"DJANGO_MIGRATE_ON_START": "sometimes"}
    result, _ = run_once(containers, web_image, env=env, options=["--network", database.network])
    assert result.returncode == 3
    assert result.stderr == (
        "error: DJANGO_MIGRATE_ON_START='sometimes' is not a boolean; "
        "use one of true/false, yes/no, on/off, 1/0\n"
    )


def test_three_containers_starting_at_once_migrate_exactly_once(database, web_factory):
    """The test holds the migration lock while three containers start, so all three are
    certainly racing for it when it is released; one migrates, two find nothing to do."""
    with database.connect() as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_ID])
        webs = []
        threads = [
            threading.Thread(target=lambda: webs.append(web_factory(database, healthy=False)))
            for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for web in webs:
            web.container.wait_for_log("another container is migrating; waiting", timeout=60)
        holder.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_ID])

    for web in webs:
        wait_healthy(web.container)
    outcomes = []
    for web in webs:
        messages = [line["message"] for line in web.log_lines()]
        if "Applying cats.0001_initial... OK" in messages:
            outcomes.append("applied")
        elif "No migrations to apply." in messages:
            outcomes.append("nothing to do")
    assert sorted(outcomes) == ["applied", "nothing to do", "nothing to do"]
    duplicates = database.query(
        "SELECT app, name FROM django_migrations GROUP BY app, name HAVING count(*) > 1"
    )
    assert duplicates == []
    assert all(web.get("/readyz").json() == {"status": "ok"} for web in webs)


def test_waiting_for_another_containers_migrations_is_bounded(containers, database, web_image):
    env = web_env(database) | {"DJANGO_MIGRATE_LOCK_TIMEOUT": "3"}
    with database.connect() as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_ID])
        result, seconds = run_once(
            containers, web_image, env=env, options=["--network", database.network]
        )
    assert result.returncode == 1
    assert 3 <= seconds < 20
    assert result.stderr == (
        "error: another container has held the migration lock for 3 s "
        "(DJANGO_MIGRATE_LOCK_TIMEOUT); its migrations may still be running: see its logs, "
        "then restart this one or raise the timeout\n"
    )
    progress = [json.loads(line) for line in result.stdout.splitlines()]
    waiting = [line for line in progress if line["logger"] == "entrypoint.migrate"]
    assert [line["message"] for line in waiting] == [
        "another container is migrating; waiting for it to finish (0 of 3 s)"
    ]
    assert database.query("SELECT to_regclass('django_migrations')") == [(None,)]


def test_a_database_error_while_migrating_is_one_line(containers, database, web_image):
    """A table in the way (left by hand, or by another app) makes cats.0001_initial fail:
    that migration is rolled back, the ones before it stay applied, and the server never
    starts."""
    with database.connect() as connection:
        connection.execute("CREATE TABLE cats_cat (id integer)")
    result, _ = run_once(
        containers, web_image, env=web_env(database), options=["--network", database.network]
    )
    assert result.returncode == 1
    assert result.stderr == (
        'error: migration cats.0001_initial failed: relation "cats_cat" already exists\n'
    )
    messages = [json.loads(line)["message"] for line in result.stdout.splitlines()]
    assert "Applying contenttypes.0001_initial... OK" in messages
    applied = database.query("SELECT app FROM django_migrations")
    assert ("contenttypes",) in applied
    assert ("cats",) not in applied
