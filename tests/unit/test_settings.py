"""Configuration comes from the environment and bad configuration fails with one clear line."""

import json
from pathlib import Path

import pytest
from django.conf import settings

from config.env import Env
from config.errors import EXIT_CODE, ConfigurationError
from tests.unit.support import run_python

STRONG_KEY = "k3Y-" + "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# What the entrypoint runs before waiting for the database: Django and gunicorn settings.
PREFLIGHT = ("-m", "config.gunicorn")
PRINT_SETTING = (
    "-c",
    "import sys; from config.preflight import load_for_serving; load_for_serving(); "
    "from django.conf import settings; print(repr(getattr(settings, sys.argv[1])))",
)

ENTRY_POINTS = {
    "manage.py check": ("manage.py", "check"),
    "manage.py help": ("manage.py", "help"),
    "manage.py migrate": ("manage.py", "migrate"),
    "import config.wsgi": ("-c", "import config.wsgi"),
    "import config.asgi": ("-c", "import config.asgi"),
    "django.setup()": ("-c", "import django; django.setup()"),
    "python -m config.gunicorn": PREFLIGHT,
}


def assert_refused(result, *fragments: str) -> str:
    """The process failed with exactly one `error: ...` line naming what to fix."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def setting(name: str, **env: str) -> str:
    result = run_python(*PRINT_SETTING, name, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize("command", ENTRY_POINTS.values(), ids=ENTRY_POINTS.keys())
def test_every_entry_point_refuses_to_start_without_a_secret_key(command):
    result = run_python(
        *command, env={"DJANGO_SETTINGS_MODULE": "config.settings"}, unset=("DJANGO_SECRET_KEY",)
    )
    assert_refused(result, "DJANGO_SECRET_KEY is not set")
    if command[0] == "manage.py" or command == PREFLIGHT:
        assert result.returncode == EXIT_CODE


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("short-but-random-Q7x", "only 20 characters"),
        ("ab" * 40, "fewer than 5 distinct characters"),
        ("django-insecure-" + "x1y2z3w4v5" * 5, "generated development key"),
    ],
)
def test_weak_secret_key_is_refused(key, reason):
    result = run_python(*PREFLIGHT, env={"DJANGO_SECRET_KEY": key})
    line = assert_refused(result, "DJANGO_SECRET_KEY is too weak", reason)
    assert key not in line


def test_weak_secret_key_in_a_file_names_the_file_variable(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("too-short\n")
    result = run_python(
        *PREFLIGHT,
        env={"DJANGO_SECRET_KEY_FILE": str(secret_file)},
        unset=("DJANGO_SECRET_KEY",),
    )
    assert_refused(result, "DJANGO_SECRET_KEY_FILE is too weak")


def test_weak_secret_key_is_accepted_only_when_debug_is_explicitly_on():
    result = run_python(*PREFLIGHT, env={"DJANGO_SECRET_KEY": "dev", "DJANGO_DEBUG": "true"})
    assert result.returncode == 0, result.stderr


def test_weak_fallback_key_is_refused():
    result = run_python(*PREFLIGHT, env={"DJANGO_SECRET_KEY_FALLBACKS": f"{STRONG_KEY},old"})
    assert_refused(result, "DJANGO_SECRET_KEY_FALLBACKS is too weak")


def test_secret_key_is_read_from_a_file_without_its_trailing_newline(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text(STRONG_KEY + "\n")
    value = setting("SECRET_KEY", DJANGO_SECRET_KEY_FILE=str(secret_file), DJANGO_SECRET_KEY="")
    assert value == repr(STRONG_KEY)


def test_secret_and_its_file_both_set_is_an_error(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text(STRONG_KEY)
    result = run_python(*PREFLIGHT, env={"DJANGO_SECRET_KEY_FILE": str(secret_file)})
    assert_refused(result, "DJANGO_SECRET_KEY and DJANGO_SECRET_KEY_FILE are both set")


def test_secret_file_that_does_not_exist_is_an_error(tmp_path):
    missing = tmp_path / "nope"
    result = run_python(
        *PREFLIGHT, env={"DJANGO_SECRET_KEY_FILE": str(missing)}, unset=("DJANGO_SECRET_KEY",)
    )
    assert_refused(result, "DJANGO_SECRET_KEY_FILE", str(missing), "does not exist")


def test_database_password_is_read_from_a_file(tmp_path, cluster):
    password_file = tmp_path / "pg-password"
    password_file.write_text(cluster.password + "\n")
    result = run_python(
        "manage.py",
        "shell",
        "--no-imports",
        "-c",
        "from django.db import connection; connection.cursor().execute('SELECT 1'); print('ok')",
        env={"POSTGRES_PASSWORD_FILE": str(password_file)},
        unset=("POSTGRES_PASSWORD",),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_database_url_is_used_instead_of_postgres_variables(cluster):
    url = f"postgres://cats:{cluster.password}@127.0.0.1:{cluster.port}/postgres"
    result = run_python(
        "manage.py",
        "shell",
        "--no-imports",
        "-c",
        "from django.db import connection; c = connection.cursor(); "
        "c.execute('SELECT current_database()'); print(c.fetchone()[0])",
        env={"DATABASE_URL": url},
        unset=("POSTGRES_HOST",),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "postgres"


@pytest.mark.parametrize(
    ("env", "fragments"),
    [
        ({"DJANGO_DEBUG": "ture"}, ["DJANGO_DEBUG='ture' is not a boolean"]),
        ({"DJANGO_SECURE_SSL_REDIRECT": "maybe"}, ["DJANGO_SECURE_SSL_REDIRECT", "boolean"]),
        ({"UPLOAD_MAX_MB": "ten"}, ["UPLOAD_MAX_MB='ten' is not a whole number"]),
        ({"UPLOAD_MAX_MB": "0"}, ["UPLOAD_MAX_MB=0 is out of range"]),
        (
            {"UPLOAD_MAX_MB": "101"},
            ["UPLOAD_MAX_MB=101 is out of range; use a value from 1 to 100"],
        ),
        ({"DATABASE_CONNECT_TIMEOUT": "-1"}, ["DATABASE_CONNECT_TIMEOUT=-1 is out of range"]),
        ({"POSTGRES_PORT": "99999"}, ["POSTGRES_PORT=99999 is out of range"]),
        ({"DJANGO_SECURE_HSTS_SECONDS": "1y"}, ["DJANGO_SECURE_HSTS_SECONDS", "whole number"]),
        ({"DJANGO_LOG_LEVEL": "loud"}, ["DJANGO_LOG_LEVEL='loud' is not one of"]),
        ({"DJANGO_DB_CONNECTIONS": "many"}, ["DJANGO_DB_CONNECTIONS='many' is not one of"]),
        ({"DJANGO_MEDIA_ROOT": "media"}, ["DJANGO_MEDIA_ROOT='media' must be an absolute path"]),
        ({"DJANGO_ALLOWED_HOSTS": ""}, ["DJANGO_ALLOWED_HOSTS is not set"]),
        (
            {"DJANGO_ALLOWED_HOSTS": "https://cats.example.com"},
            ["DJANGO_ALLOWED_HOSTS entry 'https://cats.example.com' is not a host name"],
        ),
        (
            {"DJANGO_CSRF_TRUSTED_ORIGINS": "cats.example.com"},
            ["DJANGO_CSRF_TRUSTED_ORIGINS entry 'cats.example.com' is not an origin"],
        ),
        (
            {"DJANGO_SILENCED_SYSTEM_CHECKS": "security.W008,W012"},
            ["DJANGO_SILENCED_SYSTEM_CHECKS entry 'W012' is not a check id"],
        ),
        (
            {"DATABASE_URL": "mysql://u:hunter2@db/cats"},
            ["DATABASE_URL must be a PostgreSQL URL"],
        ),
        (
            {"DATABASE_URL": "postgres://u:hunter2@db:port/cats"},
            ["DATABASE_URL is not a valid URL"],
        ),
    ],
    ids=lambda value: next(iter(value.items()))[0] if isinstance(value, dict) else None,
)
def test_malformed_values_are_refused_with_the_variable_named(env, fragments):
    line = assert_refused(run_python(*PREFLIGHT, env=env), *fragments)
    assert "hunter2" not in line


def test_database_url_and_postgres_host_together_are_ambiguous():
    result = run_python(*PREFLIGHT, env={"DATABASE_URL": "postgres://u:p@db/cats"})
    assert_refused(result, "DATABASE_URL and POSTGRES_HOST are both set")


def test_no_database_configured_is_an_error():
    result = run_python(*PREFLIGHT, unset=("POSTGRES_HOST",))
    assert_refused(result, "no database configured", "DATABASE_URL", "POSTGRES_HOST")


def test_production_is_the_default():
    assert settings.DEBUG is False
    assert settings.SECURE_SSL_REDIRECT is True
    assert settings.SESSION_COOKIE_SECURE is True
    assert settings.CSRF_COOKIE_SECURE is True
    assert settings.SECURE_HSTS_SECONDS == 31_536_000
    assert settings.SECURE_PROXY_SSL_HEADER == ("HTTP_X_FORWARDED_PROTO", "https")
    assert settings.CSRF_TRUSTED_ORIGINS == []
    assert settings.MEDIA_ROOT.is_absolute()
    assert settings.UPLOAD_MAX_MB == 10


def test_empty_value_counts_as_unset():
    assert setting("DEBUG", DJANGO_DEBUG="") == "False"
    assert setting("UPLOAD_MAX_MB", UPLOAD_MAX_MB="") == "10"


@pytest.mark.parametrize(
    ("word", "expected"),
    [(w, True) for w in ("1", "true", "True", "YES", "on")]
    + [(w, False) for w in ("0", "false", "no", "OFF")],
)
def test_boolean_words(word, expected):
    assert Env({"FLAG": word}).boolean("FLAG", default=not expected) is expected


def test_values_starting_with_a_dollar_are_taken_literally():
    # django-environ would look up a variable named after the rest of the value instead.
    assert Env({"SECRET": "$HOME-and-more"}).secret("SECRET") == "$HOME-and-more"


def test_configuration_error_is_an_ordinary_exception_in_process():
    with pytest.raises(ConfigurationError, match="FLAG='2' is not a boolean"):
        Env({"FLAG": "2"}).boolean("FLAG", default=False)


def test_settings_values_follow_the_environment():
    env = {
        "DJANGO_ALLOWED_HOSTS": "cats.example.com, .example.org,10.0.0.5",
        "DJANGO_CSRF_TRUSTED_ORIGINS": "https://admin.example.com",
        "DJANGO_SECURE_SSL_REDIRECT": "off",
        "DJANGO_SECURE_COOKIES": "no",
        "DJANGO_TRUST_X_FORWARDED_PROTO": "false",
        "UPLOAD_MAX_MB": "3",
        "DATABASE_CONNECT_TIMEOUT": "7",
    }
    script = (
        "import json; from config.preflight import load_for_serving; load_for_serving(); "
        "from django.conf import settings as s; db = s.DATABASES['default']; print(json.dumps(["
        "s.ALLOWED_HOSTS, s.CSRF_TRUSTED_ORIGINS, s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE,"
        " s.CSRF_COOKIE_SECURE, s.SECURE_PROXY_SSL_HEADER, s.UPLOAD_MAX_BYTES,"
        " db['OPTIONS']['connect_timeout']]))"
    )
    result = run_python("-c", script, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        ["cats.example.com", ".example.org", "10.0.0.5"],
        ["https://admin.example.com"],
        False,
        False,
        False,
        None,
        3 * 1024 * 1024,
        7,
    ]


def test_deploy_check_passes_with_the_production_environment():
    result = run_python("manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr


def test_deploy_check_catches_a_disabled_ssl_redirect_until_it_is_silenced():
    env = {"DJANGO_SECURE_SSL_REDIRECT": "false"}
    failing = run_python("manage.py", "check", "--deploy", "--fail-level", "WARNING", env=env)
    assert failing.returncode != 0
    assert "security.W008" in failing.stderr
    env["DJANGO_SILENCED_SYSTEM_CHECKS"] = "security.W008"
    passing = run_python("manage.py", "check", "--deploy", "--fail-level", "WARNING", env=env)
    assert passing.returncode == 0, passing.stderr


def test_hsts_subdomain_and_preload_warnings_return_when_those_flags_are_on():
    env = {"DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "true", "DJANGO_SECURE_HSTS_PRELOAD": "true"}
    assert setting("SILENCED_SYSTEM_CHECKS", **env) == "[]"
    assert setting("SILENCED_SYSTEM_CHECKS") == "['security.W005', 'security.W021']"


def test_migrations_are_committed():
    result = run_python("manage.py", "makemigrations", "--check", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr


BUILD = {"DJANGO_BUILD_STATIC": "1"}
NO_RUNTIME_CONFIG = ("DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "POSTGRES_HOST")


class TestBuildMode:
    """DJANGO_BUILD_STATIC lets the image build collect static files, and nothing else."""

    def test_collectstatic_needs_no_secret_and_no_database(self, tmp_path):
        result = run_python(
            "manage.py",
            "collectstatic",
            "--noinput",
            env=BUILD | {"DJANGO_STATIC_ROOT": str(tmp_path)},
            unset=NO_RUNTIME_CONFIG,
        )
        assert result.returncode == 0, result.stderr
        manifest = json.loads((tmp_path / "staticfiles.json").read_text())
        hashed = manifest["paths"]["cats/style.css"]
        assert hashed != "cats/style.css"
        assert (tmp_path / hashed).is_file()
        assert (tmp_path / f"{hashed}.gz").is_file()
        assert Path(tmp_path / "admin/css/base.css").is_file()

    @pytest.mark.parametrize(
        "command",
        [
            ("manage.py", "migrate"),
            ("manage.py", "runserver"),
            ("-c", "import config.wsgi"),
            ("-c", "import config.asgi"),
            PREFLIGHT,
        ],
    )
    def test_nothing_else_runs_in_build_mode(self, command):
        result = run_python(*command, env=BUILD)
        assert_refused(result, "DJANGO_BUILD_STATIC is set")
        assert result.returncode == EXIT_CODE


def test_preflight_is_silent_when_the_configuration_is_good():
    result = run_python(*PREFLIGHT)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
