"""Data and secrets across restarts, updates and operator changes."""

import re
import time

import pytest

from tests.harness.compose import ComposeError
from tests.harness.polling import wait_until
from tests.stack.support import boot, png_bytes, python_in_web, reconfigured

SECRETS = "/run/secrets/catcollector"
# photos-backup touches it each time it starts waiting for changes (its health check reads it).
PHOTOS_BACKUP_HEARTBEAT = "/tmp/photos-backup/heartbeat"
# A photo's snapshot comes after photos-backup's debounce (5 s) and takes a second or two.
SNAPSHOT_BOUND_S = 40
STRONG_KEY = "operator-chosen-key-" + "x7Kq2mP9vR4tL8wN3jH6" * 3
CONNECT = (
    "import psycopg; psycopg.connect(host='db', user='catcollector', dbname='catcollector', "
    "password={password!r}, connect_timeout=5).close(); print('connected')"
)


def stored(stack, name: str) -> str:
    """A file of the secrets volume, read where all of them are mounted (db; web has its own)."""
    return stack.exec("db", "cat", f"{SECRETS}/{name}")


def waiting_since(stack) -> float:
    """When photos-backup last began to wait for a change to the photos (Unix time)."""
    return float(
        stack.exec("photos-backup", "date", "--reference", PHOTOS_BACKUP_HEARTBEAT, "+%s.%N")
    )


def connects(stack, password: str) -> bool:
    result = stack.project.exec(
        "web", "python", "-c", CONNECT.format(password=password), check=False
    )
    return result.stdout.strip() == "connected"


def test_data_and_secrets_survive_down_up_and_recreate(compose_project, free_port):
    stack = boot(compose_project, free_port())
    stack.create_superuser()
    client = stack.signed_in_client()
    photo = png_bytes(color=(1, 2, 3))
    page = client.get(client.create_cat("Persistent", photo))
    uploaded = time.time()
    photo_url = re.search(r'<img src="(/media/[^"]+)"', page.text).group(1)
    secrets_before = {
        name: stored(stack, name) for name in ("django_secret_key", "postgres_password")
    }

    # As on a reboot or an update: every service stops promptly, and the volumes stay. The
    # stop comes as photos-backup begins a wait (after the photo's snapshot), its longest one.
    wait_until(lambda: waiting_since(stack) > uploaded, SNAPSHOT_BOUND_S,
               what="photos-backup waiting again after the photo's snapshot")  # fmt: skip
    assert stack.project.stop_reporting_slow() == {}
    stack.project.compose("down")
    stack.up()
    stack.project.compose("up", "--detach", "--wait", "--force-recreate")

    names = [cat["name"] for cat in client.get("/api/cats/").json()["results"]]
    assert names == ["Persistent"]
    assert client.get(photo_url).content == photo
    assert {name: stored(stack, name) for name in secrets_before} == secrets_before
    assert "django_secret_key kept" in stack.logs("init-secrets")
    assert "generated" not in stack.logs("init-secrets")
    assert stack.get("/readyz", https=False).status_code == 200


def test_operator_secrets_from_env_and_a_changed_password(compose_project, free_port, tmp_path):
    stack = boot(
        compose_project,
        free_port(),
        env={"DJANGO_SECRET_KEY": STRONG_KEY, "POSTGRES_PASSWORD": "first-password"},
    )
    assert stored(stack, "django_secret_key") == STRONG_KEY
    assert stored(stack, "postgres_password") == "first-password"
    assert python_in_web(stack, "from django.conf import settings; print(settings.SECRET_KEY)") == (
        STRONG_KEY
    )
    assert connects(stack, "first-password")
    assert not connects(stack, "another-password")

    # The operator changes the password in .env only: refused, nothing changes, site stays up.
    changed = reconfigured(stack, tmp_path / "changed", POSTGRES_PASSWORD="second-password")  # noqa: S106
    with pytest.raises(ComposeError):
        changed.up(build=False)
    [refusal] = [line for line in changed.logs("init-secrets").splitlines() if "error:" in line]
    assert refusal.startswith(
        "init-secrets-1  | error: POSTGRES_PASSWORD differs from the postgres_password stored"
    )
    assert refusal.endswith("docker compose run --rm init-secrets --replace postgres_password")
    assert stored(stack, "postgres_password") == "first-password"
    assert stack.get("/readyz", https=False).status_code == 200

    # The documented change: PostgreSQL first, then the stored copy, then web restarts.
    changed.exec(
        "db", "psql", "--username=catcollector", "--dbname=catcollector",
        "--command=ALTER ROLE catcollector PASSWORD 'second-password'",
    )  # fmt: skip
    changed.project.run("init-secrets", "--replace", "postgres_password")
    changed.project.compose("up", "--detach", "--wait", "--force-recreate", "web")
    assert stored(changed, "postgres_password") == "second-password"
    assert connects(changed, "second-password")
    assert not connects(changed, "first-password")
    assert changed.get("/readyz", https=False).status_code == 200
    assert changed.get("/").status_code == 200

    # Same rule for the Django key.
    new_key = STRONG_KEY.replace("operator", "rotated!")
    rotated = reconfigured(changed, tmp_path / "rotated", DJANGO_SECRET_KEY=new_key)
    with pytest.raises(ComposeError):
        rotated.up(build=False)
    assert "--replace django_secret_key" in rotated.logs("init-secrets")
    assert stored(rotated, "django_secret_key") == STRONG_KEY
    rotated.project.run("init-secrets", "--replace", "django_secret_key")
    rotated.up(build=False)
    rotated.project.compose("up", "--detach", "--wait", "--force-recreate", "web")
    key = python_in_web(rotated, "from django.conf import settings; print(settings.SECRET_KEY)")
    assert key == new_key


def test_operator_secret_files_through_compose_secrets(compose_project, free_port, tmp_path):
    operator_dir = tmp_path / "operator-secrets"
    operator_dir.mkdir()
    key = "file-supplied-key-" + "Zt5Wq8Ln2Vb6Xc9Mk3Hj" * 3
    (operator_dir / "django_secret_key").write_text(key + "\n")
    (operator_dir / "postgres_password").write_text("password-from-a-file\n")
    (operator_dir / "postgres_app_password").write_text("app-password-from-a-file\n")
    for path in (operator_dir, *operator_dir.iterdir()):
        path.chmod(0o555 if path.is_dir() else 0o444)

    stack = boot(
        compose_project,
        free_port(),
        files=("compose.yaml", "compose.secrets.yaml"),
        env={"SECRETS_DIR": str(operator_dir)},
    )
    assert (
        python_in_web(stack, "from django.conf import settings; print(settings.SECRET_KEY)") == key
    )
    assert connects(stack, "password-from-a-file")
    assert stack.get("/").status_code == 200
