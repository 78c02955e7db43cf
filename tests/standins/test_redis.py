"""The redis image's documented contract (redis/docker-library-redis), as compose.worker.yaml
uses it: the redis user (UID 999) and /data, any command run as given, configuration (the
password) on standard input, the append-only file surviving a stop, and clients on other
containers."""

import re
import time

from tests.harness.docker import docker, image_config
from tests.harness.standins import promised_version

READY_TIMEOUT_S = 30
PASSWORD = "a-generated-password_0123456789"  # noqa: S105 (a throwaway test server)
# compose.worker.yaml's way in: configuration on standard input, options on the command line.
STDIN_CONFIG = (
    'exec redis-server - --appendonly yes --appendfsync everysec --save "" <<EOF\n'
    "requirepass $(cat /run/secrets/redis_password)\n"
    "EOF\n"
)


def cli(container, *args: str, password: str | None = PASSWORD) -> str:
    env = {"REDISCLI_AUTH": password} if password else None
    return container.exec("redis-cli", *args, env=env, check=False).stdout.strip()


def wait_ready(container, password: str | None = PASSWORD) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while cli(container, "ping", password=password) != "PONG":
        assert time.monotonic() < deadline, f"not ready:\n{container.logs()}"
        time.sleep(0.2)


def secret_dir(containers, image: str, tmp_path):
    """The password as init-secrets stores it: owner root, group 10001, mode 0440."""
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "redis_password").write_text(PASSWORD)
    (folder / "redis_password").chmod(0o440)
    chown = containers.run_once(image, "chown", "-R", "0:10001", "/s",
                                options=["--volume", f"{folder}:/s"])  # fmt: skip
    assert chown.returncode == 0, chown.stderr
    return folder


def test_server_runs_as_redis_999_in_data(containers, redis_image):
    config = image_config(redis_image)
    assert config["WorkingDir"] == "/data"
    assert "/data" in config["Volumes"]
    assert config["Cmd"] == ["redis-server"]
    server = containers.run(redis_image)
    wait_ready(server, password=None)
    status = server.exec("cat", "/proc/1/status").stdout
    assert re.search(r"^Uid:\s+999\s+999\s+999\s+999$", status, re.MULTILINE), status
    assert server.exec("id", "-un", "999").stdout.strip() == "redis"
    assert server.exec("stat", "-c", "%u", "/data").stdout.strip() == "999"


def test_other_commands_run_as_given_with_a_private_umask(containers, redis_image):
    """compose.worker.yaml's command is `sh -c ...`: run as given, as the user it is started
    as (no switch to redis), with the entrypoint's umask (0077 in place of Docker's 0022)."""
    result = containers.run_once(redis_image, "sh", "-c", "id -u; umask")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "0077"]
    result = containers.run_once(redis_image, "sh", "-c", "id -u", options=["--user", "999"])
    assert result.stdout.split() == ["999"]


def test_password_on_stdin_as_a_non_root_user_on_a_read_only_root(
    containers, redis_image, tmp_path
):
    """compose.worker.yaml's redis: --user 999:999 with web's group to read the secret,
    read-only root, no capabilities; the password is in neither the command line nor the
    environment, and a client without it is refused."""
    secrets = secret_dir(containers, redis_image, tmp_path)
    server = containers.run(
        redis_image, "sh", "-c", STDIN_CONFIG,
        options=[
            "--user", "999:999", "--group-add", "10001", "--read-only", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges:true",
            "--volume", f"{secrets}:/run/secrets:ro",
        ],
    )  # fmt: skip
    wait_ready(server)
    assert cli(server, "ping", password=None).startswith("NOAUTH")
    # redis-cli reports the refused password on stderr and goes on unauthenticated.
    refused = cli(server, "ping", password="wrong")  # noqa: S106 (a wrong one on purpose)
    assert refused.startswith("NOAUTH"), refused
    command_line = server.exec("cat", "/proc/1/cmdline").stdout
    assert command_line.startswith("redis-server")
    assert PASSWORD not in command_line
    assert PASSWORD not in server.exec("cat", "/proc/1/environ").stdout
    assert cli(server, "config", "get", "appendonly").split() == ["appendonly", "yes"]


def test_the_append_only_file_keeps_every_write_across_a_stop(containers, redis_image, tmp_path):
    secrets = secret_dir(containers, redis_image, tmp_path)
    server = containers.run(
        redis_image, "sh", "-c", STDIN_CONFIG,
        options=["--user", "999:999", "--group-add", "10001",
                 "--volume", f"{secrets}:/run/secrets:ro"],
    )  # fmt: skip
    wait_ready(server)
    assert cli(server, "rpush", "queue", "a", "b", "c") == "3"
    # docker stop: SIGTERM, which Redis answers by writing its files out.
    server.stop(timeout_s=30)
    assert server.inspect()["State"]["ExitCode"] == 0
    docker("start", server.name)
    wait_ready(server)
    assert cli(server, "lrange", "queue", "0", "-1").split() == ["a", "b", "c"]
    assert "appendonlydir" in server.exec("ls", "/data").stdout.split()


def test_clients_on_other_containers_connect(containers, redis_image):
    """The official image turns protected mode off: a container on the same network reaches
    a server started with no configuration at all."""
    network = containers.network()
    containers.run(redis_image, options=["--network", network, "--network-alias", "broker"])
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        result = containers.run_once(
            redis_image, "redis-cli", "-h", "broker", "set", "seen", "yes",
            options=["--network", network],
        )  # fmt: skip
        if result.stdout.strip() == "OK":
            break
        assert time.monotonic() < deadline, result.stdout + result.stderr
        time.sleep(0.5)


def test_version_is_the_tags(containers, redis_image):
    result = containers.run_once(redis_image, "redis-server", "--version")
    version = re.search(r"v=(\d+(?:\.\d+)*)", result.stdout).group(1)
    wanted = promised_version(redis_image)
    assert version == wanted or version.startswith(wanted + ".")
