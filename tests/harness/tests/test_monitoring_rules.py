"""monitoring/ and compose.monitoring.yaml: the alert rules are valid and pass their tests,
each alert tested firing and quiet (promtool); Prometheus' configuration is valid, also as its
start script rewrites it from .env, and scrapes the ports the images define; Alertmanager's
configuration, rendered from the environment, is valid (amtool); a bad value in either is one
`error:` line; every runbook is the one docs/operations.md gives, and every metric of ours the
rules read is Django's (config/metrics.py) or in the VM's contract there; the exporters read
what the stack's files give them (nginx's status port, the secret files' group).

Without promtool or amtool their tests skip, except under CI, where they fail with the reason:
CI must provide them (tests/harness/monitoring.py says how).
"""

import re
import subprocess

import pytest
import yaml

from tests.harness import REPO, ci, monitoring

ALERTS = monitoring.PROMETHEUS / "alerts.yml"
RENDER = monitoring.MONITORING / "alertmanager" / "render-config.sh"
START = monitoring.PROMETHEUS / "start.sh"
COMPOSE = yaml.safe_load((REPO / "compose.monitoring.yaml").read_text())["services"]
OPERATIONS = REPO / "docs" / "operations.md"


def checker(name: str) -> list[str]:
    reason = monitoring.missing(name)
    if reason is not None:
        if ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return monitoring.command(name)


@pytest.fixture(scope="module")
def promtool() -> list[str]:
    return checker("promtool")


@pytest.fixture(scope="module")
def amtool() -> list[str]:
    return checker("amtool")


def rules() -> list[dict]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def passed(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout, result.stdout


def test_the_rules_and_prometheus_configuration_are_valid(promtool):
    passed(monitoring.run(promtool, "check", "rules", "alerts.yml"))
    passed(monitoring.run(promtool, "check", "config", "prometheus.yml"))


def test_every_alert_passes_its_tests(promtool):
    passed(monitoring.run(promtool, "test", "rules", "alerts_test.yml"))


def test_every_alert_is_tested_firing_and_quiet():
    tests = yaml.safe_load((monitoring.PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    alerts = {rule["alert"] for rule in rules()}
    assert {case["alertname"] for case in cases if case["exp_alerts"]} == alerts
    assert {case["alertname"] for case in cases if not case["exp_alerts"]} == alerts


def test_every_alert_has_a_severity_a_summary_and_a_one_line_runbook():
    for rule in rules():
        assert rule["labels"]["severity"] in ("page", "warning"), rule["alert"]
        assert set(rule["annotations"]) == {"summary", "runbook"}, rule["alert"]
        assert "\n" not in rule["annotations"]["runbook"], rule["alert"]


def docs_section(heading: str) -> str:
    text = OPERATIONS.read_text()
    start = text.index(f"\n### {heading}\n")
    end = text.find("\n#", start + 1)
    return text[start:end]


def table_rows(section: str) -> list[list[str]]:
    """Each row of the section's table, its cells without the code marks."""
    return [
        [cell.strip().replace("`", "") for cell in line.strip().strip("|").split(" | ")]
        for line in section.splitlines()
        if line.startswith("| ") and not line.startswith("|---")
    ][1:]


def test_the_docs_give_every_alert_with_its_severity_and_runbook():
    documented = {row[0]: row for row in table_rows(docs_section("Alerts"))}
    for rule in rules():
        name, severity, _, runbook = documented.pop(rule["alert"])
        assert severity == rule["labels"]["severity"], name
        assert runbook == rule["annotations"]["runbook"], name
    assert documented == {}, "documented alerts that alerts.yml does not have"


def test_every_metric_of_ours_the_rules_read_is_djangos_or_in_the_vms_contract():
    read = set(re.findall(r"\bcatcollector_[a-z_]+", ALERTS.read_text()))
    django = set(re.findall(r'"(catcollector_[a-z_]+)"', (REPO / "config/metrics.py").read_text()))
    exported = {
        f"{name}{suffix}"
        for name in django
        for suffix in ("", "_total", "_bucket", "_sum", "_count", "_info")
    }
    contract = {row[0] for row in table_rows(docs_section("Facts from the VM"))}
    assert read - exported - contract == set()
    assert all(name.startswith("catcollector_") for name in contract), contract


def image_env(dockerfile: str, name: str) -> str:
    return re.search(rf"\b{name}=(\d+)", (REPO / dockerfile).read_text()).group(1)


def test_prometheus_scrapes_the_ports_the_images_define():
    jobs = {
        job["job_name"]: job
        for job in yaml.safe_load((monitoring.PROMETHEUS / "prometheus.yml").read_text())[
            "scrape_configs"
        ]
    }
    [web] = jobs["web"]["dns_sd_configs"]
    assert web["names"] == ["web"]
    assert str(web["port"]) == image_env("Dockerfile", "GUNICORN_METRICS_PORT")
    for job, variable, scheme in (
        ("site", "NGINX_HTTP_PORT", "http"),
        ("site_tls", "NGINX_HTTPS_PORT", "https"),
    ):
        [target] = jobs[job]["static_configs"][0]["targets"]
        assert target == f"{scheme}://nginx:{image_env('nginx/Dockerfile', variable)}/readyz"


def test_the_nginx_exporter_reads_the_status_port_nginx_listens_on():
    [listen] = re.findall(r"^\s*listen (\d+);", (REPO / "nginx/nginx.conf").read_text(), re.M)
    assert COMPOSE["nginx-exporter"]["command"] == [
        f"--nginx.scrape-uri=http://nginx:{listen}/stub_status"
    ]


def test_the_exporters_read_the_secrets_as_web_does():
    """The secret files' group is the web image's app group; the database role and password
    are web's (the app's role, no superuser)."""
    app_gid = image_env("Dockerfile", "APP_GID")
    web = yaml.safe_load((REPO / "compose.yaml").read_text())["services"]["web"]["environment"]
    exporter = COMPOSE["postgres-exporter"]
    assert exporter["environment"]["DATA_SOURCE_USER"] == web["POSTGRES_USER"]
    assert exporter["environment"]["DATA_SOURCE_PASS_FILE"] == web["POSTGRES_PASSWORD_FILE"]
    for service in ("postgres-exporter", "redis-exporter"):
        assert COMPOSE[service]["group_add"] == [app_gid], service


def start(tmp_path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """start.sh with `echo` for Prometheus: it prints the arguments Prometheus would get."""
    return subprocess.run(
        ["sh", str(START), str(tmp_path), "echo"],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def test_the_start_script_writes_the_intervals_and_passes_the_retention(tmp_path, promtool):
    result = start(tmp_path, {
        "PROMETHEUS_SCRAPE_INTERVAL": "5s", "PROMETHEUS_EVALUATION_INTERVAL": "2s",
        "PROMETHEUS_RETENTION_TIME": "7d", "PROMETHEUS_RETENTION_SIZE": "512MB",
    })  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        f"--config.file={tmp_path}/prometheus.yml",
        "--storage.tsdb.retention.time=7d",
        "--storage.tsdb.retention.size=512MB",
    ]
    written = yaml.safe_load((tmp_path / "prometheus.yml").read_text())
    assert written["global"]["scrape_interval"] == "5s"
    assert written["global"]["evaluation_interval"] == "2s"
    original = yaml.safe_load((monitoring.PROMETHEUS / "prometheus.yml").read_text())
    assert {k: v for k, v in written.items() if k != "global"} == {
        k: v for k, v in original.items() if k != "global"
    }
    passed(monitoring.run(promtool, "check", "config", "prometheus.yml", cwd=tmp_path))


def test_unset_the_file_keeps_its_own_intervals(tmp_path):
    result = start(tmp_path, {})
    assert result.returncode == 0, result.stderr
    prometheus_yml = (monitoring.PROMETHEUS / "prometheus.yml").read_text()
    assert (tmp_path / "prometheus.yml").read_text() == prometheus_yml
    assert "--storage.tsdb.retention.time=30d" in result.stdout.split()


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"PROMETHEUS_SCRAPE_INTERVAL": "15"}, "PROMETHEUS_SCRAPE_INTERVAL='15' is not a duration"),
        ({"PROMETHEUS_EVALUATION_INTERVAL": "1m/"}, "PROMETHEUS_EVALUATION_INTERVAL='1m/' is not"),
        (
            {"PROMETHEUS_SCRAPE_INTERVAL": "90s"},
            "PROMETHEUS_SCRAPE_INTERVAL='90s' is longer than 1m",
        ),
        ({"PROMETHEUS_EVALUATION_INTERVAL": "1h"}, "PROMETHEUS_EVALUATION_INTERVAL='1h' is longer"),
        ({"PROMETHEUS_RETENTION_TIME": "forever"}, "PROMETHEUS_RETENTION_TIME='forever' is not"),
        ({"PROMETHEUS_RETENTION_SIZE": "2G"}, "PROMETHEUS_RETENTION_SIZE='2G' is not a size"),
    ],
    ids=[
        "scrape",
        "evaluation",
        "scrape-too-long",
        "evaluation-too-long",
        "retention-time",
        "retention-size",
    ],
)
def test_a_bad_prometheus_setting_is_one_line(tmp_path, env, error):
    result = start(tmp_path, env)
    assert result.returncode == 3
    assert result.stderr.startswith(f"error: {error}"), result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert result.stdout == ""


# --- Alertmanager's configuration, rendered from the environment ----------------------------

MAIL = {
    "ALERTMANAGER_EMAIL_TO": "ops@example.org,jane@example.org",
    "ALERTMANAGER_EMAIL_FROM": "alerts@example.org",
    "ALERTMANAGER_SMTP_SMARTHOST": "smtp.example.org:587",
}
WEBHOOK = {"ALERTMANAGER_WEBHOOK_URL": "https://hooks.example.org/services/T0/B1/secret"}


def render(tmp_path, env: dict[str, str], *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["sh", str(RENDER), str(tmp_path / "alertmanager.yml"), *command],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


@pytest.fixture
def password_file(tmp_path):
    path = tmp_path / "smtp_password"
    path.write_text("a-password\n")
    return str(path)


@pytest.mark.parametrize(
    "settings",
    ["none", "webhook", "mail", "mail-signed-in", "both"],
)
def test_the_rendered_configuration_is_valid(tmp_path, amtool, password_file, settings):
    env = {
        "none": {},
        "webhook": WEBHOOK,
        "mail": MAIL | {"ALERTMANAGER_SMTP_REQUIRE_TLS": "no"},
        "mail-signed-in": MAIL
        | {
            "ALERTMANAGER_SMTP_USERNAME": "alerts",
            "ALERTMANAGER_SMTP_PASSWORD_FILE": password_file,
        },
        "both": WEBHOOK | MAIL,
    }[settings]
    result = render(tmp_path, env)
    assert result.returncode == 0, result.stderr
    output = tmp_path / "alertmanager.yml"
    assert output.stat().st_mode & 0o777 == 0o600
    passed(monitoring.run(amtool, "check-config", str(output)))
    [receiver] = yaml.safe_load(output.read_text())["receivers"]
    assert ("webhook_configs" in receiver) == ("ALERTMANAGER_WEBHOOK_URL" in env)
    assert ("email_configs" in receiver) == ("ALERTMANAGER_EMAIL_TO" in env)
    if settings == "none":
        assert result.stderr.startswith("notice: neither ALERTMANAGER_WEBHOOK_URL nor")


def test_the_script_runs_the_command_after_it(tmp_path):
    result = render(tmp_path, WEBHOOK, "cat", str(tmp_path / "alertmanager.yml"))
    assert result.returncode == 0, result.stderr
    assert WEBHOOK["ALERTMANAGER_WEBHOOK_URL"] in result.stdout


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"ALERTMANAGER_WEBHOOK_URL": "hooks.example.org/x"}, "ALERTMANAGER_WEBHOOK_URL is not"),
        (
            {"ALERTMANAGER_WEBHOOK_URL": 'https://hooks.example.org/"x'},
            "ALERTMANAGER_WEBHOOK_URL must not contain double quotes",
        ),
        (
            MAIL | {"ALERTMANAGER_EMAIL_TO": "ops@example.org,ops"},
            "ALERTMANAGER_EMAIL_TO entry 'ops' is not a mail address",
        ),
        (
            MAIL | {"ALERTMANAGER_EMAIL_TO": "ops@example.org,,jane@example.org"},
            "ALERTMANAGER_EMAIL_TO='ops@example.org,,jane@example.org' has an empty entry",
        ),
        (
            {**MAIL, "ALERTMANAGER_EMAIL_FROM": ""},
            "ALERTMANAGER_EMAIL_TO is set but ALERTMANAGER_EMAIL_FROM is not",
        ),
        (
            {**MAIL, "ALERTMANAGER_SMTP_SMARTHOST": ""},
            "ALERTMANAGER_EMAIL_TO is set but ALERTMANAGER_SMTP_SMARTHOST is not",
        ),
        (
            MAIL | {"ALERTMANAGER_SMTP_SMARTHOST": "smtp.example.org"},
            "ALERTMANAGER_SMTP_SMARTHOST='smtp.example.org' is not host:port",
        ),
        (
            MAIL | {"ALERTMANAGER_SMTP_USERNAME": "alerts"},
            "ALERTMANAGER_SMTP_USERNAME and ALERTMANAGER_SMTP_PASSWORD_FILE go together",
        ),
        (
            MAIL
            | {"ALERTMANAGER_SMTP_USERNAME": "alerts", "ALERTMANAGER_SMTP_PASSWORD_FILE": "/no"},
            "ALERTMANAGER_SMTP_PASSWORD_FILE points at /no, which is missing",
        ),
        (
            {"ALERTMANAGER_SMTP_SMARTHOST": "smtp.example.org:587"},
            "ALERTMANAGER_SMTP_SMARTHOST is set but ALERTMANAGER_EMAIL_TO is not",
        ),
        (
            {"ALERTMANAGER_SMTP_REQUIRE_TLS": "maybe"},
            "ALERTMANAGER_SMTP_REQUIRE_TLS='maybe' is not a boolean",
        ),
    ],
    ids=[
        "url",
        "url-quote",
        "to",
        "to-empty-entry",
        "from-missing",
        "smarthost-missing",
        "smarthost-port",
        "username-alone",
        "password-file",
        "mail-without-to",
        "require-tls",
    ],
)
def test_a_bad_setting_is_one_line_and_nothing_is_written(tmp_path, env, error):
    result = render(tmp_path, env, "false")
    assert result.returncode == 3
    assert result.stderr.startswith(f"error: {error}"), result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "alertmanager.yml").exists()
