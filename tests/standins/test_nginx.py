"""The nginx image's documented contract (nginx/docker-nginx)."""

import re
from pathlib import Path

from tests.harness.docker import image_config
from tests.harness.standins import promised_version

STARTED = r"start worker process"
WORKER_UIDS = (
    "for d in /proc/[0-9]*; do "
    'if grep -q "^nginx: worker process" "$d/cmdline" 2>/dev/null; '
    "then awk '/^Uid:/ {print $2}' \"$d/status\"; fi; done"
)


def get(container, path: str = "/", port: int = 80) -> str:
    """GET over loopback inside the container (the official image ships curl too)."""
    return container.exec(
        "curl", "--silent", "--show-error", f"http://127.0.0.1:{port}{path}"
    ).stdout


def readable(*paths: Path) -> None:
    for path in paths:
        path.chmod(path.stat().st_mode | (0o555 if path.is_dir() else 0o444))


def test_serves_the_default_page_with_workers_as_uid_101(containers, nginx_image):
    web = containers.run(nginx_image)
    web.wait_for_log(STARTED)
    assert "Welcome to nginx!" in get(web)
    worker_uids = web.exec("sh", "-c", WORKER_UIDS).stdout.split()
    assert worker_uids
    assert set(worker_uids) == {"101"}
    assert web.exec("id", "nginx").stdout.startswith("uid=101(nginx) gid=101(nginx)")


def test_templates_rendered_with_defined_variables_only(containers, nginx_image, tmp_path: Path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "default.conf.template").write_text(
        "# left alone: ${NOT_DEFINED_ANYWHERE}\n"
        "server {\n"
        "    listen ${NGINX_PORT};\n"
        '    location / { return 200 "port=${NGINX_PORT} host=$host method=$request_method\\n"; }\n'
        "}\n"
    )
    readable(templates, *templates.iterdir())
    web = containers.run(
        nginx_image,
        env={"NGINX_PORT": "8080"},
        options=["--volume", f"{templates}:/etc/nginx/templates:ro"],
    )
    web.wait_for_log(STARTED)
    assert get(web, port=8080) == "port=8080 host=127.0.0.1 method=GET\n"
    rendered = web.exec("cat", "/etc/nginx/conf.d/default.conf").stdout
    assert "# left alone: ${NOT_DEFINED_ANYWHERE}" in rendered
    assert "listen 8080;" in rendered


def test_template_dir_suffix_output_dir_and_filter(containers, nginx_image, tmp_path: Path):
    templates = tmp_path / "html-templates"
    (templates / "about").mkdir(parents=True)
    (templates / "index.html.tpl").write_text("app=${APP_NAME} other=${OTHER_VALUE}\n")
    (templates / "about" / "index.html.tpl").write_text("about ${APP_NAME}\n")
    (templates / "ignored.html.template").write_text("wrong suffix\n")
    readable(templates, templates / "about", *templates.rglob("*.*"))
    web = containers.run(
        nginx_image,
        env={
            "NGINX_ENVSUBST_TEMPLATE_DIR": "/html-templates",
            "NGINX_ENVSUBST_TEMPLATE_SUFFIX": ".tpl",
            "NGINX_ENVSUBST_OUTPUT_DIR": "/usr/share/nginx/html",
            "NGINX_ENVSUBST_FILTER": "^APP_",
            "APP_NAME": "cats",
            "OTHER_VALUE": "defined but filtered out",
        },
        options=["--volume", f"{templates}:/html-templates:ro"],
    )
    web.wait_for_log(STARTED)
    assert get(web, "/") == "app=cats other=${OTHER_VALUE}\n"
    assert get(web, "/about/") == "about cats\n"
    assert "404" in get(web, "/ignored.html")


def test_entrypoint_scripts_run_in_order_and_envsh_is_sourced(
    containers, nginx_image, tmp_path: Path
):
    envsh = tmp_path / "05-greeting.envsh"
    envsh.write_text("export GREETING=sourced-before-templates\n")
    script = tmp_path / "40-mark.sh"
    script.write_text('#!/bin/sh\necho "40-mark ran with GREETING=$GREETING"\n')
    not_executable = tmp_path / "50-skipped.sh"
    not_executable.write_text("#!/bin/sh\necho must not run\n")
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "greeting.conf.template").write_text(
        'server { listen 8081; location / { return 200 "${GREETING}"; } }\n'
    )
    envsh.chmod(0o755)
    script.chmod(0o755)
    not_executable.chmod(0o644)
    readable(templates, *templates.iterdir())
    web = containers.run(
        nginx_image,
        options=[
            "--volume", f"{envsh}:/docker-entrypoint.d/05-greeting.envsh:ro",
            "--volume", f"{script}:/docker-entrypoint.d/40-mark.sh:ro",
            "--volume", f"{not_executable}:/docker-entrypoint.d/50-skipped.sh:ro",
            "--volume", f"{templates}:/etc/nginx/templates:ro",
        ],
    )  # fmt: skip
    logs = web.wait_for_log(STARTED)
    assert "40-mark ran with GREETING=sourced-before-templates" in logs
    assert "Ignoring /docker-entrypoint.d/50-skipped.sh, not executable" in logs
    assert "must not run" not in logs
    assert get(web, port=8081) == "sourced-before-templates"


def test_entrypoint_configures_only_when_the_command_is_nginx(containers, nginx_image):
    result = containers.run_once(nginx_image, "cat", "/etc/nginx/conf.d/default.conf")
    assert result.returncode == 0
    assert "docker-entrypoint" not in result.stdout + result.stderr
    assert "[::]" not in result.stdout


def test_local_resolvers_are_exported_for_templates(containers, nginx_image, tmp_path: Path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "resolver.conf.template").write_text("resolver ${NGINX_LOCAL_RESOLVERS};\n")
    readable(templates, *templates.iterdir())
    web = containers.run(
        nginx_image,
        env={"NGINX_ENTRYPOINT_LOCAL_RESOLVERS": "1"},
        options=["--volume", f"{templates}:/etc/nginx/templates:ro"],
    )
    web.wait_for_log(STARTED)
    nameservers = re.findall(
        r"^nameserver\s+(\S+)", web.exec("cat", "/etc/resolv.conf").stdout, re.M
    )
    assert nameservers
    expected = " ".join(f"[{ns}]" if ":" in ns else ns for ns in nameservers)
    rendered = web.exec("cat", "/etc/nginx/conf.d/resolver.conf").stdout
    assert rendered == f"resolver {expected};\n"


def test_worker_processes_follow_the_cpu_quota_when_autotuned(containers, nginx_image):
    web = containers.run(
        nginx_image,
        env={"NGINX_ENTRYPOINT_WORKER_PROCESSES_AUTOTUNE": "1"},
        options=["--cpus", "1"],
    )
    web.wait_for_log(STARTED)
    assert re.search(
        r"^worker_processes\s+1;", web.exec("cat", "/etc/nginx/nginx.conf").stdout, re.M
    )
    assert len(web.exec("sh", "-c", WORKER_UIDS).stdout.split()) == 1


def test_runs_as_101_on_a_read_only_root_with_tmpfs_for_cache_and_run(containers, nginx_image):
    web = containers.run(
        nginx_image,
        options=[
            "--user", "101", "--read-only",
            "--tmpfs", "/var/cache/nginx:uid=101,gid=101", "--tmpfs", "/run:uid=101,gid=101",
        ],
    )  # fmt: skip
    # Starting at all proves the temp folders nginx creates at start-up were writable.
    web.wait_for_log(STARTED)
    assert "Welcome to nginx!" in get(web)
    status = web.exec("cat", "/proc/1/status").stdout
    assert re.search(r"^Uid:\s+101\s", status, re.MULTILINE), status


def test_stop_signal_is_sigquit_a_graceful_shutdown(containers, nginx_image):
    assert image_config(nginx_image)["StopSignal"] == "SIGQUIT"
    web = containers.run(nginx_image)
    web.wait_for_log(STARTED)
    web.stop(timeout_s=30)
    assert web.inspect()["State"]["ExitCode"] == 0
    assert re.search(r"signal 3 \(SIGQUIT\) received", web.logs())
    assert "gracefully shutting down" in web.logs()


def test_image_layout(containers, nginx_image):
    config = image_config(nginx_image)
    assert config["Cmd"] == ["nginx", "-g", "daemon off;"]
    assert config["Entrypoint"] == ["/docker-entrypoint.sh"]
    assert "80/tcp" in config["ExposedPorts"]
    layout = containers.run_once(
        nginx_image, "sh", "-c",
        "readlink /var/log/nginx/access.log /var/log/nginx/error.log; "
        "test -d /var/cache/nginx && echo cache-dir; "
        "test -e /etc/nginx/sites-enabled || echo no-sites-enabled; "
        "grep -c 'include /etc/nginx/conf.d/\\*.conf;' /etc/nginx/nginx.conf; "
        "ls /etc/nginx/conf.d",
    )  # fmt: skip
    assert layout.stdout.split() == [
        "/dev/stdout",
        "/dev/stderr",
        "cache-dir",
        "no-sites-enabled",
        "1",
        "default.conf",
    ]


def test_version_is_the_tags(containers, nginx_image):
    result = containers.run_once(nginx_image, "nginx", "-v")
    version = re.search(r"nginx/(\d+(?:\.\d+)*)", result.stderr).group(1)
    wanted = promised_version(nginx_image)
    assert version == wanted or version.startswith(wanted + ".")
