"""config.container's readings of the machine: CPU quota, memory limit, tmpfs sizes and
attached networks, with the files Linux would show (cgroup v2 cannot be produced on a cgroup v1
engine; tests/image runs the same code under real `docker run --cpus`), the worker count and
config.gunicorn_logging's access line. The settings block itself, with bad values, runs in a
fresh process per case."""

import datetime
import json
import os
from pathlib import Path

import pytest
from gunicorn.config import Config

from config import container
from config.container import SERVED_BY
from config.errors import EXIT_CODE
from config.gunicorn_logging import JsonAccessLogger
from config.logging import JsonFormatter
from tests.unit.support import run_python
from tests.unit.test_settings import PRINT_SETTING, assert_refused


@pytest.fixture(scope="module")
def gunicorn_config():
    try:
        import config.gunicorn as module  # noqa: PLC0415 (loads Django's settings)

        yield module
    finally:
        # What it names for the settings, kept from the processes later tests start.
        os.environ.pop(SERVED_BY, None)


def cgroup(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
    ids=["v2-limited", "v2-unlimited", "v1-limited", "v1-unlimited", "no-cgroup"],
)
def test_cpu_quota_from_cgroup_v2_then_v1(tmp_path, files, quota):
    assert container.cgroup_cpu_quota(cgroup(tmp_path, files)) == quota


def test_available_cpus_rounds_the_quota_up_and_never_exceeds_the_cpuset(tmp_path):
    schedulable = len(os.sched_getaffinity(0))
    half = cgroup(tmp_path / "half", {"cpu.max": "50000 100000"})
    assert container.available_cpus(half) == 1
    huge = cgroup(tmp_path / "huge", {"cpu.max": "6400000 100000"})
    assert container.available_cpus(huge) == schedulable
    assert container.available_cpus(tmp_path / "none") == schedulable


@pytest.mark.parametrize(("cpus", "workers"), [(1, 2), (2, 4), (4, 8), (6, 8), (64, 8)])
def test_default_workers_are_two_per_cpu_up_to_eight(cpus, workers):
    assert container.default_workers(cpus) == workers


PHYSICAL = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize(
    ("files", "limit"),
    [
        ({"memory.max": "1073741824\n"}, 2**30),
        ({"memory.max": "max\n"}, PHYSICAL),
        ({"memory/memory.limit_in_bytes": "536870912\n"}, 2**29),
        # cgroup v1's "no limit", rounded down to a page
        ({"memory/memory.limit_in_bytes": "9223372036854771712\n"}, PHYSICAL),
        ({}, PHYSICAL),
        ({"memory.max": "\n"}, PHYSICAL),
    ],
    ids=["v2-limited", "v2-unlimited", "v1-limited", "v1-unlimited", "no-cgroup", "unreadable"],
)
def test_memory_limit_from_cgroup_v2_then_v1_else_the_machines(tmp_path, files, limit):
    assert container.memory_limit(cgroup(tmp_path, files)) == limit


def test_tmpfs_size_counts_only_a_tmpfs_mounted_at_the_path(tmp_path):
    stats = os.statvfs("/dev/shm")
    shm = stats.f_blocks * stats.f_frsize
    mounts = {
        "tmpfs": "tmpfs /dev/shm tmpfs rw,nosuid,nodev,size=65536k 0 0\n",
        "covered": "tmpfs /dev/shm tmpfs rw 0 0\noverlay /dev/shm overlay rw 0 0\n",
        "other": "/dev/sda1 /dev/shm ext4 rw 0 0\ntmpfs /dev/shm/x tmpfs rw 0 0\n",
    }
    sizes = {
        name: container.tmpfs_size("/dev/shm", cgroup(tmp_path, {name: text}) / name)
        for name, text in mounts.items()
    }
    assert sizes == {"tmpfs": shm, "covered": 0, "other": 0}
    assert shm > 0
    assert container.tmpfs_size("/dev/shm", tmp_path / "missing") == 0


def test_attached_networks_are_connected_routes_and_global_ipv6_prefixes(tmp_path):
    proc_net = cgroup(
        tmp_path,
        {
            "route": (
                "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\n"
                "eth0\t00000000\t010018AC\t0003\t0\t0\t0\t00000000\t0\n"
                "eth0\t000018AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\n"
                "eth1\t0000A8C0\t00000000\t0001\t0\t0\t0\t00F0FFFF\t0\n"
            ),
            "if_inet6": (
                "fd000000000000000000000000000003 04 40 00 80     eth0\n"
                "fe8000000000000000fc00fffe000001 04 40 20 80     eth0\n"
                "00000000000000000000000000000001 01 80 10 80       lo\n"
            ),
        },
    )
    assert container.attached_networks(proc_net) == [
        "172.24.0.0/16",
        "192.168.0.0/20",
        "fd00::/64",
    ]


class _Response:
    status = "404 Not Found"
    sent = 179


def test_access_line_is_json_with_the_request_id_and_trusted_client(caplog):
    cfg = Config()
    cfg.set("forwarded_allow_ips", "10.0.0.0/8")
    cfg.set("accesslog", "-")
    logger = JsonAccessLogger(cfg)
    logger.access_log.addHandler(caplog.handler)
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/nope/",
        "REMOTE_ADDR": "10.1.2.3",
        "HTTP_X_REQUEST_ID": "req-1",
        "HTTP_X_FORWARDED_FOR": "198.51.100.1, 203.0.113.9",
    }
    try:
        logger.access(_Response(), None, environ, datetime.timedelta(seconds=1, microseconds=2500))
        logger.access(
            _Response(),
            None,
            environ | {"REMOTE_ADDR": "192.0.2.5", "HTTP_X_REQUEST_ID": "bad id"},
            datetime.timedelta(microseconds=400),
        )
    finally:
        logger.access_log.removeHandler(caplog.handler)
    formatter = JsonFormatter()
    trusted, untrusted = (json.loads(formatter.format(record)) for record in caplog.records)
    assert trusted | {"time": None} == {
        "time": None,
        "level": "INFO",
        "logger": "gunicorn.access",
        "message": "GET /nope/ 404",
        "request_id": "req-1",
        "method": "GET",
        "path": "/nope/",
        "status": 404,
        "duration_ms": 1002.5,
        "remote_addr": "203.0.113.9",
        "bytes": 179,
    }
    assert (untrusted["remote_addr"], untrusted["request_id"]) == ("192.0.2.5", None)


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"GUNICORN_PORT": ""}, "error: GUNICORN_PORT='' is not a port number; the image sets"),
        ({"GUNICORN_PORT": "web"}, "error: GUNICORN_PORT='web' is not a port number"),
        (
            {"GUNICORN_METRICS_PORT": "metrics"},
            "error: GUNICORN_METRICS_PORT='metrics' is not a whole number",
        ),
        ({"GUNICORN_METRICS_PORT": "70000"}, "error: GUNICORN_METRICS_PORT=70000 is out of range"),
        (
            {"GUNICORN_METRICS_PORT": "8000"},
            "error: GUNICORN_METRICS_PORT=8000 is GUNICORN_PORT too; the metrics need a port",
        ),
        ({"GUNICORN_WORKERS": "0"}, "error: GUNICORN_WORKERS=0 is out of range"),
        ({"GUNICORN_TIMEOUT": "soon"}, "error: GUNICORN_TIMEOUT='soon' is not a whole number"),
        (
            {"GUNICORN_FORWARDED_ALLOW_IPS": "nginx"},
            "error: GUNICORN_FORWARDED_ALLOW_IPS entry 'nginx' is not an IP address or network",
        ),
        (
            {"GUNICORN_MODE": "asgi", "DJANGO_DB_CONNECTIONS": "persistent"},
            "error: DJANGO_DB_CONNECTIONS=persistent leaks a database connection",
        ),
    ],
    ids=[
        "port-unset",
        "port-name",
        "metrics-port-name",
        "metrics-port-range",
        "metrics-port-same",
        "workers",
        "timeout",
        "trusted",
        "asgi-persistent",
    ],
)
def test_bad_server_settings_stop_with_one_line(env, error):
    result = run_python("-m", "config.gunicorn", env=env)
    assert result.returncode == EXIT_CODE
    assert result.stderr.startswith(error)
    assert len(result.stderr.splitlines()) == 1


def test_threads_may_exceed_the_pool_size_only_without_a_pool():
    env = {"GUNICORN_THREADS": "12", "DJANGO_DB_POOL_MAX_SIZE": "8"}
    pooled = run_python("-m", "config.gunicorn", env=env)
    assert (pooled.returncode, pooled.stderr) == (
        EXIT_CODE,
        "error: GUNICORN_THREADS=12 is more than DJANGO_DB_POOL_MAX_SIZE=8; "
        "threads would wait for database connections\n",
    )
    for connections in ("persistent", "per-request"):
        result = run_python(
            "-c",
            "import config.gunicorn as g; print(g.threads)",
            env=env | {"DJANGO_DB_CONNECTIONS": connections},
        )
        assert (result.returncode, result.stdout) == (0, "12\n"), result.stderr


POOL = (
    "import json, sys; {load}; from django.conf import settings; "
    "print(json.dumps(settings.DATABASES['default']['OPTIONS']['pool'], sort_keys=True))"
)


@pytest.mark.parametrize(
    ("load", "env", "declared"),
    [
        ("import config.gunicorn", {}, {"timeout": 0.25, "reconnect_timeout": 0.25,
                                         "min_size": 1}),
        ("import config.gunicorn", {"GUNICORN_THREADS": "4"},
         {"timeout": 0.25, "reconnect_timeout": 0.25, "min_size": 4, "max_waiting": 3}),
        ("import config.gunicorn", {"GUNICORN_MODE": "asgi", "GUNICORN_THREADS": "4"},
         {"timeout": 5, "reconnect_timeout": 5, "min_size": 1}),
        ("import django; django.setup()", {"GUNICORN_THREADS": "4"},
         {"timeout": 5, "reconnect_timeout": 5, "min_size": 1}),
    ],
    ids=["wsgi-sync", "wsgi-gthread", "asgi", "manage-py"],
)  # fmt: skip
def test_the_pool_of_a_wsgi_worker_is_declared_from_its_threads(load, env, declared):
    """gunicorn names its mode and threads before the settings load, and the settings declare
    the pool from them; every other process (manage.py, the worker) keeps the defaults."""
    result = run_python("-c", POOL.format(load=load),
                        env={"DJANGO_SETTINGS_MODULE": "config.settings", **env})  # fmt: skip
    assert result.returncode == 0, result.stderr
    pool = json.loads(result.stdout)
    assert pool == {"max_size": 10, **declared}


UNCHANGED = (
    "import django; django.setup(); from django.conf import settings; "
    "import config.settings as declared; names = [n for n in vars(declared) if n.isupper()]; "
    "before = {{n: repr(getattr(settings, n)) for n in names}}; import {module}; "
    "print([n for n in names if repr(getattr(settings, n)) != before[n]])"
)


@pytest.mark.parametrize("module", ["config.gunicorn", "config.celery"])
def test_the_servers_configurations_change_no_setting(module):
    """Settings are a declaration: loading gunicorn's or Celery's configuration after them
    (as gunicorn names itself first) leaves every setting config/settings.py declares as it
    was."""
    env = {"DJANGO_SETTINGS_MODULE": "config.settings", SERVED_BY: "wsgi 4",
           "GUNICORN_THREADS": "4"}  # fmt: skip
    result = run_python("-c", UNCHANGED.format(module=module), env=env)
    assert (result.returncode, result.stdout) == (0, "[]\n"), result.stderr


def test_the_server_is_named_by_gunicorn_only():
    result = run_python(*PRINT_SETTING, "DATABASES", env={SERVED_BY: "wsgi many"})
    assert_refused(result, f"{SERVED_BY}='wsgi many' is config/gunicorn.py's to set")


def test_good_settings_load_silently():
    result = run_python(
        "-c",
        "import config.gunicorn as g; print(g.workers, g.threads, g.worker_class, "
        "g.forwarded_allow_ips.split(',')[:2], g.control_socket_disable, g.preload_app)",
        env={"GUNICORN_WORKERS": "3", "GUNICORN_THREADS": "6"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "3 6 gthread ['127.0.0.1', '::1'] True True\n"


def test_debug_turns_preloading_off_so_reload_works():
    """gunicorn's --reload cannot reload an app imported in the master."""
    show = "import config.gunicorn as g; print(g.preload_app)"
    debug = run_python("-c", show, env={"DJANGO_DEBUG": "true"})
    assert debug.stdout == "False\n", debug.stderr
    forced = run_python("-c", show, env={"DJANGO_DEBUG": "true", "GUNICORN_PRELOAD": "yes"})
    assert forced.stdout == "True\n", forced.stderr


WHEN_READY = """
import gc
from types import SimpleNamespace
import config.gunicorn as g
import config.wsgi  # the app, as preloading loads it
from django.template import engines
loader = engines["django"].engine.template_loaders[0]
g.when_ready(SimpleNamespace(cfg=SimpleNamespace(preload_app={preload})))
print(len(loader.get_template_cache), gc.get_freeze_count() > 0)
"""


@pytest.mark.parametrize("preload", [True, False])
def test_the_master_warms_templates_when_preloaded_and_freezes_its_objects(preload):
    """Workers fork from a master whose objects the collector no longer scans, and, when the
    app is preloaded, whose templates are compiled (config.warmup)."""
    result = run_python("-c", WHEN_READY.format(preload=preload))
    assert result.returncode == 0, result.stderr
    compiled, frozen = result.stdout.split()
    assert (int(compiled) > 20, frozen) == (preload, "True")
