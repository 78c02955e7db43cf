"""kubernetes/ against the files it was written from: the overlays, rendered by `kubectl
kustomize` as `kubectl apply -k` renders them, give each container what compose.yaml gives its
service (probes, users, hardening, limits, tmpfs mounts, ports, variables, secrets as files,
stop grace), with stack.yaml's CPUs. YAML cannot import compose.yaml, so the manifests repeat
its values; this module reads every one of them from its home (compose.yaml, stack.yaml, the
Dockerfiles, the scripts), never from a literal here. Without kubectl it fails, as the lint
check does: the manifests must not go unchecked.

Which Kubernetes container stands for which compose service: MIGRATION runs web's image with
web's settings; the publish init containers are compose's publish service.
"""

import ast
import re
import shutil
import subprocess
from functools import cache

import pytest
import yaml

from tests.harness import REPO
from tools.ops.commands import READINESS

KUBERNETES = REPO / "kubernetes"
OVERLAYS = ("single", "production")
COMPOSE_FILE = yaml.safe_load((REPO / "compose.yaml").read_text())
COMPOSE = COMPOSE_FILE["services"]
STACK_FILE = yaml.safe_load((REPO / "stack.yaml").read_text())
STACK = STACK_FILE["services"]
WEB_DOCKERFILE = (REPO / "Dockerfile").read_text()
NGINX_DOCKERFILE = (REPO / "nginx" / "Dockerfile").read_text()
SWARM_DOCS = (REPO / "docs" / "swarm.md").read_text()

# Kubernetes container name: the compose service it stands for.
SERVICE_OF = {
    "web": "web",
    "nginx": "nginx",
    "postgres": "db",
    "publish": "publish",
    "publish-previous": "publish",
    "migrate": "web",
    "wait-for-db": "web",
}
# The pods' component labels, likewise.
SERVICE_OF_COMPONENT = {"web": "web", "nginx": "nginx", "db": "db", "migrate": "web"}
# The migrations' containers have web's image, settings and limits, but a Job's scratch space
# of their own: compose has no migrations container whose tmpfs mounts they would copy.
MIGRATION = ("migrate", "wait-for-db")

# Variables compose gives a service that its Kubernetes container does not get, each with why.
LEFT_OUT = {
    "web": {
        # Secret values: a ConfigMap shows them to whoever may read it. The _FILE forms stay.
        "DATABASE_URL": "a secret value; DATABASE_URL_FILE stays",
        "DJANGO_SECRET_KEY_FALLBACKS": "a secret value; its _FILE form stays",
        "DJANGO_EMAIL_HOST_PASSWORD": "a secret value; its _FILE form stays",
    },
    "nginx": {
        "NGINX_HOSTS_CONFIGURED": "compose derives it for a first start's help page; as under "
        "swarm, nginx drops unknown hosts from the start",
    },
    "db": {
        "OPS_BACKUP_REMOTE": "compose's continuous archive; the official image has none",
        "PGBACKREST_PG1_USER": "compose's continuous archive; the official image has none",
    },
}
# Variables a Kubernetes container gets that compose does not give its service, each with why.
ADDED = {
    "web": {},
    "nginx": {"NGINX_UPSTREAM_HOST": "the web Service's name, as stack.yaml sets it"},
    "db": {"PGDATA": "initdb needs a folder below the volume's root (lost+found)"},
}
# compose's tmpfs mounts a Kubernetes container does not get, each with why.
TMPFS_LEFT_OUT = {
    "/var/spool/pgbackrest": "compose's continuous archive's queue; the official image has none",
    "/run/backup-ssh": "the archive's remote copy's keys; the official image has none",
}
# Values that differ from compose's default, each with why.
NO_APP_ROLE = "web signs in as the bootstrap role: kubernetes/ has no db-roles Job yet"
CHANGED = {
    "DJANGO_MIGRATE_ON_START": ("false", "the migrate Job applies the migrations"),
    "POSTGRES_USER": ("catcollector", NO_APP_ROLE),
    "POSTGRES_PASSWORD_FILE": ("/run/secrets/catcollector/postgres_password", NO_APP_ROLE),
}


@cache
def rendered(overlay: str) -> tuple[dict, ...]:
    if shutil.which("kubectl") is None:
        pytest.fail("no kubectl on PATH: it renders kubernetes/ (kubectl kustomize)")
    result = subprocess.run(
        ["kubectl", "kustomize", str(KUBERNETES / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return tuple(document for document in yaml.safe_load_all(result.stdout) if document)


def resource(overlay: str, kind: str, name: str) -> dict:
    (found,) = [
        document
        for document in rendered(overlay)
        if document["kind"] == kind and document["metadata"]["name"] == name
    ]
    return found


def workloads(overlay: str) -> list[dict]:
    return [
        document
        for document in rendered(overlay)
        if document["kind"] in ("Deployment", "StatefulSet", "Job")
    ]


def pod(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def containers(overlay: str) -> list[tuple[dict, dict]]:
    """Every container and init container, with its pod."""
    return [
        (pod(workload), container)
        for workload in workloads(overlay)
        for container in (*pod(workload).get("initContainers", ()), *pod(workload)["containers"])
    ]


def container(overlay: str, name: str) -> tuple[dict, dict]:
    (found,) = [(spec, item) for spec, item in containers(overlay) if item["name"] == name]
    return found


def compose_default(value: str | None) -> str:
    """What compose gives `${NAME:-default}`, `${NAME}`, a literal or nothing with no .env."""
    if value is None:
        return ""
    match = re.fullmatch(r"\$\{\w+(?::?-(.*))?\}", str(value))
    return (match.group(1) or "") if match else str(value)


def docker_bytes(size: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kmg]?)b?", str(size).lower()).groups()
    return int(number) * 1024 ** " kmg".index(unit or " ")


def kubernetes_bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(Ki|Mi|Gi)?", quantity).groups()
    return int(number) * 1024 ** ["", "Ki", "Mi", "Gi"].index(unit or "")


def millicpus(quantity: str) -> int:
    return int(quantity[:-1]) if quantity.endswith("m") else round(float(quantity) * 1000)


def dockerfile_value(text: str, name: str) -> str:
    return re.search(rf"\b{name}=(\S+)", text).group(1)


def tmpfs_sizes(service: dict) -> dict[str, int]:
    """compose's tmpfs mounts of a service (and shm_size at /dev/shm): path to bytes."""
    sizes = {}
    for entry in service.get("tmpfs", ()):
        path, _, options = entry.partition(":")
        option = dict(item.split("=") for item in options.split(","))
        sizes[path] = docker_bytes(option["size"])
    if "shm_size" in service:
        sizes["/dev/shm"] = docker_bytes(service["shm_size"])
    return sizes


def environment(overlay: str, spec: dict, item: dict) -> dict[str, str]:
    """The variables a container gets, its ConfigMaps' included."""
    variables = {}
    for source in item.get("envFrom", ()):
        config_map = resource(overlay, "ConfigMap", source["configMapRef"]["name"])
        variables.update(config_map.get("data", {}))
    variables.update({entry["name"]: entry["value"] for entry in item.get("env", ())})
    return variables


def port_number(item: dict, port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [entry["containerPort"] for entry in item["ports"] if entry["name"] == port]
    return number


def healthcheck_default_path() -> str:
    """The path scripts/healthcheck.py asks without an argument (the image's HEALTHCHECK)."""
    tree = ast.parse((REPO / "scripts" / "healthcheck.py").read_text())
    (main,) = [node for node in tree.body if getattr(node, "name", None) == "main"]
    return main.args.defaults[0].value


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_web_is_probed_where_compose_and_tools_ops_probe_it(overlay):
    _, web = container(overlay, "web")
    assert '["python", "/app/scripts/healthcheck.py"]' in WEB_DOCKERFILE
    gunicorn_port = int(dockerfile_value(WEB_DOCKERFILE, "GUNICORN_PORT"))
    for probe in ("startupProbe", "livenessProbe"):
        assert web[probe]["httpGet"]["path"] == healthcheck_default_path()
        assert port_number(web, web[probe]["httpGet"]["port"]) == gunicorn_port
    # The probe tools/ops asks before a release gets traffic.
    assert web["readinessProbe"]["httpGet"]["path"] == READINESS[-1]
    assert port_number(web, web["readinessProbe"]["httpGet"]["port"]) == gunicorn_port


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_nginx_is_probed_as_its_image_healthcheck_probes_it(overlay):
    _, nginx = container(overlay, "nginx")
    path = re.search(r"http://127\.0\.0\.1:\$\{NGINX_HTTP_PORT\}(/\S+)", NGINX_DOCKERFILE)[1]
    http_port = int(dockerfile_value(NGINX_DOCKERFILE, "NGINX_HTTP_PORT"))
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert nginx[probe]["httpGet"]["path"] == path
        assert port_number(nginx, nginx[probe]["httpGet"]["port"]) == http_port


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_database_is_probed_with_compose_healthcheck_command(overlay):
    _, postgres = container(overlay, "postgres")
    kind, script = COMPOSE["db"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        # compose writes $$ for a $ the shell sees.
        assert postgres[probe]["exec"]["command"] == ["sh", "-c", script.replace("$$", "$")]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_run_as_the_users_their_dockerfiles_name(overlay):
    app_user = [int(dockerfile_value(WEB_DOCKERFILE, f"APP_{id_}")) for id_ in ("UID", "GID")]
    nginx_user = [int(n) for n in re.search(r"^USER (\d+):(\d+)$", NGINX_DOCKERFILE, re.M).groups()]
    expected = {"web": app_user, "publish": app_user, "nginx": nginx_user}
    for spec, item in containers(overlay):
        service = SERVICE_OF[item["name"]]
        if service not in expected:
            continue
        # No `user:` in compose: the image's USER applies.
        assert "user" not in COMPOSE[service]
        context = spec.get("securityContext", {}) | item.get("securityContext", {})
        assert [context["runAsUser"], context["runAsGroup"]] == expected[service], item["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_hardened_as_compose_hardens_its_service(overlay):
    for spec, item in containers(overlay):
        service = COMPOSE[SERVICE_OF[item["name"]]]
        context = item["securityContext"]
        assert spec["securityContext"]["runAsNonRoot"] is True, item["name"]
        assert context["readOnlyRootFilesystem"] is service["read_only"], item["name"]
        assert context["capabilities"] == {"drop": service["cap_drop"]}, item["name"]
        assert ("no-new-privileges:true" in service["security_opt"]) is not context[
            "allowPrivilegeEscalation"
        ], item["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_limits_are_compose_memory_and_swarm_cpus_and_requests_compose_weights(overlay):
    for _, item in containers(overlay):
        service = SERVICE_OF[item["name"]]
        requests, limits = item["resources"]["requests"], item["resources"]["limits"]
        memory = docker_bytes(COMPOSE[service]["mem_limit"])
        assert kubernetes_bytes(limits["memory"]) == memory, item["name"]
        assert kubernetes_bytes(requests["memory"]) == memory, item["name"]
        stack_limits = STACK[service]["deploy"]["resources"]["limits"]
        assert millicpus(limits["cpu"]) == millicpus(stack_limits["cpus"]), item["name"]
        # Kubernetes weighs a container's CPU by its request (1 CPU = 1024 shares): compose's
        # cpu_shares at a quarter keeps its proportions with a reservation small nodes hold.
        assert millicpus(requests["cpu"]) * 4 == COMPOSE[service]["cpu_shares"], item["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_compose_tmpfs_mounts_are_memory_backed_empty_dirs_of_the_same_size(overlay):
    for spec, item in containers(overlay):
        if item["name"] in MIGRATION:
            continue
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        in_memory = {
            mount["mountPath"]: kubernetes_bytes(volumes[mount["name"]]["emptyDir"]["sizeLimit"])
            for mount in item["volumeMounts"]
            if volumes.get(mount["name"], {}).get("emptyDir", {}).get("medium") == "Memory"
        }
        compose = tmpfs_sizes(COMPOSE[SERVICE_OF[item["name"]]])
        expected = {path: size for path, size in compose.items() if path not in TMPFS_LEFT_OUT}
        assert in_memory == expected, item["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ports_are_the_images_and_compose_published_one(overlay):
    _, web = container(overlay, "web")
    ports = {entry["name"]: entry["containerPort"] for entry in web["ports"]}
    assert ports == {
        "http": int(dockerfile_value(WEB_DOCKERFILE, "GUNICORN_PORT")),
        "metrics": int(dockerfile_value(WEB_DOCKERFILE, "GUNICORN_METRICS_PORT")),
    }
    # nginx's upstream names the port, with the host from NGINX_UPSTREAM_HOST.
    template = (REPO / "nginx" / "templates" / "site.conf.template").read_text()
    upstream_port = int(re.search(r"server \$\{NGINX_UPSTREAM_HOST\}:(\d+)", template)[1])
    (web_port,) = resource(overlay, "Service", "web")["spec"]["ports"]
    assert web_port["port"] == upstream_port == ports["http"]

    _, nginx = container(overlay, "nginx")
    (published,) = COMPOSE["nginx"]["ports"]
    http_port, container_port = re.fullmatch(
        r"\$\{HTTP_BIND[^}]*\}:(\$\{[^}]*\}):(\d+)", published
    ).groups()
    assert [entry["containerPort"] for entry in nginx["ports"]] == [int(container_port)]
    assert int(container_port) == int(dockerfile_value(NGINX_DOCKERFILE, "NGINX_HTTP_PORT"))
    (service_port,) = resource(overlay, "Service", "nginx")["spec"]["ports"]
    assert service_port["port"] == int(compose_default(http_port))
    assert port_number(nginx, service_port["targetPort"]) == int(container_port)


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", ["web", "nginx", "postgres"])
def test_variables_are_compose_ones_with_compose_defaults(overlay, name):
    spec, item = container(overlay, name)
    service = SERVICE_OF[name]
    given = environment(overlay, spec, item)
    compose = {
        key: compose_default(value) for key, value in COMPOSE[service]["environment"].items()
    }
    assert set(given) == (set(compose) - set(LEFT_OUT[service])) | set(ADDED[service])
    for key in set(given) & set(compose):
        expected = CHANGED[key][0] if key in CHANGED else compose[key]
        assert given[key] == expected, key


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_migrations_have_web_settings_and_nginx_the_web_service_name(overlay):
    web_spec, web = container(overlay, "web")
    for name in MIGRATION:
        spec, item = container(overlay, name)
        assert environment(overlay, spec, item) == environment(overlay, web_spec, web)
        assert item["image"] == web["image"]
    nginx_spec, nginx = container(overlay, "nginx")
    upstream = environment(overlay, nginx_spec, nginx)["NGINX_UPSTREAM_HOST"]
    namespace = resource(overlay, "Service", "web")["metadata"]["namespace"]
    # stack.yaml's value, fully qualified: nginx's resolver has no search list.
    assert upstream.startswith(f"{STACK['nginx']['environment']['NGINX_UPSTREAM_HOST']}.")
    assert upstream.split(".")[:3] == ["web", namespace, "svc"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_files_of_the_secret_where_the_file_variables_point(overlay):
    for spec, item in containers(overlay):
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        files = set()
        for mount in item.get("volumeMounts", ()):
            # A StatefulSet's claims are volumes of no pod spec.
            secret = volumes.get(mount["name"], {}).get("secret")
            if secret:
                assert mount["readOnly"] is True
                files |= {f"{mount['mountPath']}/{entry['path']}" for entry in secret["items"]}
        given = environment(overlay, spec, item)
        pointed = {value for key, value in given.items() if key.endswith("_FILE") and value}
        assert pointed == files, item["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_stop_grace_is_compose_stop_grace_period_after_the_pre_stop_pause(overlay):
    for workload in workloads(overlay):
        spec = pod(workload)
        for item in spec["containers"]:
            service = COMPOSE[SERVICE_OF[item["name"]]]
            if item["name"] in MIGRATION:
                continue
            grace = int(service["stop_grace_period"].removesuffix("s"))
            pause = item.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
            assert spec["terminationGracePeriodSeconds"] == grace + pause, item["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_updates_keep_capacity_and_the_job_runs_before_the_deployments(overlay):
    for name in ("web", "nginx"):
        deployment = resource(overlay, "Deployment", name)
        rolling = deployment["spec"]["strategy"]["rollingUpdate"]
        assert rolling["maxUnavailable"] == 0
        assert rolling["maxSurge"] >= 1
        # `kubectl apply -l 'catcollector/step!=serve'` applies all but these (docs/swarm.md).
        assert deployment["metadata"]["labels"]["catcollector/step"] == "serve"
    job = resource(overlay, "Job", "migrate")
    assert "catcollector/step" not in job["metadata"]["labels"]
    assert "-l 'catcollector/step!=serve'" in SWARM_DOCS
    assert pod(job)["containers"][0]["args"] == ["python", "/app/scripts/migrate.py"]


def test_single_runs_one_of_each_and_production_several_that_a_drain_cannot_all_stop():
    for workload in workloads("single"):
        assert workload["spec"].get("replicas", 1) == 1
    for name in ("web", "nginx"):
        replicas = resource("production", "Deployment", name)["spec"]["replicas"]
        budget = resource("production", "PodDisruptionBudget", name)["spec"]
        assert replicas > 1
        assert budget["maxUnavailable"] < replicas


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_let_through_only_what_compose_networks_connect(overlay):
    policies = [doc for doc in rendered(overlay) if doc["kind"] == "NetworkPolicy"]
    assert {"podSelector": {}, "policyTypes": ["Ingress"]} in [doc["spec"] for doc in policies]
    for policy in policies:
        target = policy["spec"]["podSelector"].get("matchLabels", {})
        if not target:
            continue
        target_service = COMPOSE[SERVICE_OF_COMPONENT[target["app.kubernetes.io/component"]]]
        for rule in policy["spec"].get("ingress", ()):
            if "from" not in rule:
                # From anywhere: only to a service compose publishes.
                assert "ports" in target_service, target
                continue
            for peer in rule["from"]:
                selector = peer["podSelector"]
                sources = list(selector.get("matchLabels", {}).values()) or next(
                    expression["values"] for expression in selector["matchExpressions"]
                )
                for source in sources:
                    source_service = COMPOSE[SERVICE_OF_COMPONENT[source]]
                    shared = set(source_service["networks"]) & set(target_service["networks"])
                    assert shared, (source, target)
    # stack.yaml's database: on the internal network only, so no way out.
    assert STACK["db"]["networks"] == ["backend"]
    assert STACK_FILE["networks"]["backend"]["internal"] is True
    db = resource(overlay, "NetworkPolicy", "db")["spec"]
    assert "Egress" in db["policyTypes"]
    assert db["egress"] == []
    # web's networks are all internal in the stack (compose's outbound opens only by a setting):
    # out to the database's port and the cluster's DNS, nothing else.
    assert all(STACK_FILE["networks"][name]["internal"] for name in STACK["web"]["networks"])
    web = resource(overlay, "NetworkPolicy", "web")["spec"]
    assert "Egress" in web["policyTypes"]
    [to_db, to_dns] = web["egress"]
    assert to_db["to"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/component": "db"}}}]
    assert [p["port"] for p in to_db["ports"]] == [
        container(overlay, "postgres")[1]["ports"][0]["containerPort"]
    ]
    assert {p["port"] for p in to_dns["ports"]} == {53}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_database_is_the_image_compose_db_image_starts_from(overlay):
    _, postgres = container(overlay, "postgres")
    base = re.search(r"^FROM (\S+)$", (REPO / "postgres" / "Dockerfile").read_text(), re.M)[1]
    assert postgres["image"] == base
    _, web = container(overlay, "web")
    _, previous = container(overlay, "publish-previous")
    assert previous["image"].rpartition(":")[0] == web["image"].rpartition(":")[0]


def test_the_docs_name_the_versions_the_lint_layer_validates():
    lint = (REPO / "tests" / "harness" / "lint").read_text()
    versions = re.search(r"^kubernetes_versions=\(([^)]*)\)", lint, re.M)[1].split()
    section = SWARM_DOCS[SWARM_DOCS.index("## Kubernetes") :]
    for version in versions:
        assert version.rpartition(".")[0] in section, version
