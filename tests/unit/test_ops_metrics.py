"""./ops metrics' pieces that need no engine: the families it writes are the docs' contract, the
file is Prometheus' text format (read back by prometheus_client's own parser) and replaced
whole, a container's memory from its cgroup (this process's own, and v1 and v2 as the kernel
writes them), the deploys undone, the restore check's result and the photos' copy as the
continuous archive leaves them, the folder's checks and the timer. The verb itself runs
against the real engine in tests/ops/test_monitoring.py."""

import json
import re
import shlex
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import REPO
from tools.ops import cgroups, metrics
from tools.ops.archiving import Archiving
from tools.ops.console import Console, OpsError
from tools.ops.history import History, Rollbacks, timestamp
from tools.ops.project import Project
from tools.ops.schedule import METRICS_TIMEOUT_S, metrics_units

OPERATIONS = REPO / "docs" / "operations.md"


def contract() -> dict[str, tuple[str, tuple[str, ...]]]:
    """docs/operations.md, Facts from the VM: metric -> (type, labels)."""
    text = OPERATIONS.read_text()
    start = text.index("\n### Facts from the VM\n")
    section = text[start : text.index("\n#", start + 1)]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip().replace("`", "") for cell in line.strip().strip("|").split("|")]
        if cells[0].startswith("catcollector_"):
            labels = tuple(label.strip() for label in cells[2].split(",") if label.strip())
            rows[cells[0]] = (cells[1], labels)
    return rows


def test_the_families_written_are_the_docs_contract():
    written = {f.name: (f.kind, f.labels) for f in metrics.FAMILIES.values()}
    assert written == contract()


def test_the_file_is_prometheus_text_format_with_labels_escaped():
    facts = metrics.Facts()
    facts.add("catcollector_status", 1)
    facts.add("catcollector_backup_newest_timestamp_seconds", 1764900000.25)
    tricky = 'web "1" \\ a\nb'
    facts.add("catcollector_container_restarts_total", 3, service="web", container=tricky)
    facts.add("catcollector_container_restarts_total", 0, service="db", container="cc-db-1")
    text = metrics.exposition(facts)
    parsed = {family.name: family for family in text_string_to_metric_families(text)}
    assert parsed["catcollector_status"].type == "gauge"
    assert parsed["catcollector_status"].samples[0].value == 1
    stamp = parsed["catcollector_backup_newest_timestamp_seconds"].samples[0].value
    assert stamp == 1764900000.25
    # prometheus_client names a counter's family without `_total`, its samples with it.
    restarts = parsed["catcollector_container_restarts"]
    assert restarts.type == "counter"
    assert {(s.name, s.labels["container"], s.value) for s in restarts.samples} == {
        ("catcollector_container_restarts_total", tricky, 3),
        ("catcollector_container_restarts_total", "cc-db-1", 0),
    }
    # Families not read are absent, not zero.
    assert "catcollector_archive_lag_seconds" not in text


def test_the_file_is_replaced_whole_and_readable_by_the_collector(tmp_path):
    path = tmp_path / "catcollector.prom"
    path.write_text("old\n")
    metrics.write_atomically(path, "catcollector_status 0\n")
    assert path.read_text() == "catcollector_status 0\n"
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["catcollector.prom"]


def test_a_missing_folder_names_the_command_that_makes_it(tmp_path):
    with pytest.raises(OpsError, match=r"does not exist; sudo \./ops schedule makes it"):
        metrics.check_folder(tmp_path / "none")


def test_the_folder_is_relative_to_the_project_as_compose_reads_it(tmp_path, monkeypatch):
    monkeypatch.delenv("OPS_METRICS_DIR", raising=False)
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    project = Project(tmp_path)
    assert metrics.folder(project) == Path(metrics.DEFAULT_DIR)
    (tmp_path / ".env").write_text("OPS_METRICS_DIR=state/metrics\n")
    assert metrics.folder(project) == tmp_path / "state" / "metrics"


def test_deploys_read_the_history_and_the_deploys_undone(tmp_path):
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    project = Project(tmp_path)
    reading = metrics.Reading(project, Console("metrics", metrics.STEPS))
    reading.deploys()
    assert reading.facts.samples == {"catcollector_deploy_rolled_back_total": [({}, 0)]}
    History(project.state_dir).append("a", "proxy-a")
    History(project.state_dir).append("b", "proxy-a")
    rollbacks = Rollbacks(project.state_dir)
    rollbacks.append("c", "b", Rollbacks.DEPLOY_UNDONE)
    rollbacks.append("b", "a", Rollbacks.ROLLBACK)
    reading = metrics.Reading(project, Console("metrics", metrics.STEPS))
    reading.deploys()
    last = History(project.state_dir).entries()[-1].time
    assert reading.facts.samples == {
        "catcollector_last_deploy_timestamp_seconds": [({}, timestamp(last))],
        "catcollector_deploy_rolled_back_total": [({}, 2)],
    }
    assert timestamp("2026-12-05T03:17:00Z") == 1796440620


def project_with(tmp_path: Path, services: dict, env: str = "") -> Project:
    """A project whose compose configuration is given, not asked of compose."""
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    (tmp_path / ".env").write_text(env)
    project = Project(tmp_path)
    project._config = {"name": "catcollector", "services": services}
    return project


def test_the_restore_check_is_read_from_what_ops_backup_left(tmp_path):
    project = project_with(tmp_path, {"db": {}})
    reading = metrics.Reading(project, Console("metrics", metrics.STEPS))
    reading.restore_check()
    assert reading.facts.samples == {}
    project.state_dir.mkdir()
    result = project.state_dir / "restore-check.json"
    for ok, problem in ((True, None), (False, "cats_cat: 10 at the point, 9 restored")):
        result.write_text(json.dumps({
            "time": "2026-12-05T03:17:00Z", "ok": ok, "restore_point": "p", "tables": 3,
            "rows": 10, "seconds": 4.2, "problem": problem,
        }))  # fmt: skip
        reading = metrics.Reading(project, Console("metrics", metrics.STEPS))
        reading.restore_check()
        assert reading.facts.samples == {
            "catcollector_restore_check_ok": [({}, 1 if ok else 0)],
            "catcollector_restore_check_timestamp_seconds": [({}, 1796440620)],
        }
    external = metrics.Reading(project_with(tmp_path, {"web": {}}), Console("metrics", ()))
    external.restore_check()
    assert external.facts.samples == {}


def test_the_photos_copy_per_repository_and_none_when_photos_backup_stops(tmp_path, monkeypatch):
    monkeypatch.delenv("OPS_BACKUP_REMOTE", raising=False)
    project = project_with(tmp_path, {"db": {}, "photos-backup": {}},
                           "OPS_BACKUP_REMOTE=sftp://u@backup.example.net/srv\n")  # fmt: skip
    running = [SimpleNamespace(state="running")]
    monkeypatch.setattr(project, "containers", lambda service: running)
    states = {1: "ok 1796440620", 2: "failed 1796440621 no route"}
    monkeypatch.setattr(Archiving, "photos_copy_state", lambda self: states)
    reading = metrics.Reading(project, Console("metrics", metrics.STEPS))
    reading.photos()
    assert reading.facts.samples == {"catcollector_photos_copy_ok": [
        ({"repository": "local"}, 1), ({"repository": "remote"}, 0),
    ]}  # fmt: skip
    # The remote's first copy still under way: no sample for it yet.
    monkeypatch.setattr(Archiving, "photos_copy_state", lambda self: {1: "ok 1796440620"})
    reading = metrics.Reading(project, Console("metrics", metrics.STEPS))
    reading.photos()
    assert reading.facts.samples == {"catcollector_photos_copy_ok": [({"repository": "local"}, 1)]}
    running[:] = [SimpleNamespace(state="exited")]
    reading = metrics.Reading(project, Console("metrics", metrics.STEPS))
    reading.photos()
    assert reading.facts.samples == {"catcollector_photos_copy_ok": [
        ({"repository": "local"}, 0), ({"repository": "remote"}, 0),
    ]}  # fmt: skip


# --- a container's memory, from its cgroup -----------------------------------------------------

V2_MOUNTINFO = (
    "24 30 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n"
    "30 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
)
HYBRID_MOUNTINFO = (
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "36 31 0:33 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
)
CONTAINER_ID = "0123456789ab" + "c" * 52


def test_the_cgroups_are_found_through_the_mounts_v2_and_hybrid():
    v2 = f"0::/system.slice/docker-{CONTAINER_ID}.scope\n"
    for controller in ("memory", "cpuacct"):
        assert cgroups.controller_cgroup(v2, cgroups.mounts(V2_MOUNTINFO), controller) == (
            Path(f"/sys/fs/cgroup/system.slice/docker-{CONTAINER_ID}.scope"),
            2,
        )
    hybrid = (
        f"4:memory:/docker/{CONTAINER_ID}\n3:cpu,cpuacct:/docker/{CONTAINER_ID}\n"
        f"1:cpu:/docker/{CONTAINER_ID}\n0::/\n"
    )
    found = cgroups.mounts(HYBRID_MOUNTINFO)
    assert cgroups.controller_cgroup(hybrid, found, "memory") == (
        Path(f"/sys/fs/cgroup/memory/docker/{CONTAINER_ID}"),
        1,
    )
    assert cgroups.controller_cgroup(hybrid, found, "cpuacct") == (
        Path(f"/sys/fs/cgroup/cpu,cpuacct/docker/{CONTAINER_ID}"),
        1,
    )
    with pytest.raises(cgroups.CgroupError, match="no mounted cgroup holds its memory"):
        cgroups.controller_cgroup("4:cpu:/x\n", found, "memory")


def write_files(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_memory_as_the_limit_counts_it_the_limit_and_the_kills_v2(tmp_path):
    folder = write_files(tmp_path / "v2", {
        "memory.current": "104857600\n",
        "memory.stat": "anon 62914560\nfile 41943040\ninactive_file 20971520\nactive_file 0\n",
        "memory.max": "536870912\n",
        "memory.events": "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n",
    })  # fmt: skip
    assert cgroups.read_memory(folder, 2) == cgroups.Memory(83886080, 536870912, 2)
    (folder / "memory.max").write_text("max\n")
    assert cgroups.read_memory(folder, 2).limit is None


def test_memory_as_the_limit_counts_it_the_limit_and_the_kills_v1(tmp_path):
    folder = write_files(tmp_path / "v1", {
        "memory.usage_in_bytes": "104857600\n",
        "memory.stat": "cache 41943040\ninactive_file 1\ntotal_inactive_file 20971520\n",
        "memory.limit_in_bytes": "268435456\n",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
    })  # fmt: skip
    assert cgroups.read_memory(folder, 1) == cgroups.Memory(83886080, 268435456, 1)
    (folder / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert cgroups.read_memory(folder, 1).limit is None


def test_cpu_time_v2_and_v1(tmp_path):
    v2 = write_files(tmp_path / "v2", {"cpu.stat": "usage_usec 2500000\nuser_usec 2000000\n"})
    assert cgroups.read_cpu_seconds(v2, 2) == 2.5
    v1 = write_files(tmp_path / "v1", {"cpuacct.usage": "1500000000\n"})
    assert cgroups.read_cpu_seconds(v1, 1) == 1.5


def test_this_processs_own_usage_reads_from_its_real_cgroup():
    """The real files of this machine, whichever version it runs: memory in use, and CPU time
    that grows while this process works."""
    proc = Path("/proc")
    cgroup = (proc / "self" / "cgroup").read_text()
    found = cgroups.mounts((proc / "self" / "mountinfo").read_text())
    memory = cgroups.read_memory(*cgroups.controller_cgroup(cgroup, found, "memory"))
    assert memory.used > 1 << 20
    cpu = cgroups.controller_cgroup(cgroup, found, "cpuacct")
    before = cgroups.read_cpu_seconds(*cpu)
    busy_until = time.process_time() + 0.2
    while time.process_time() < busy_until:
        pass
    assert cgroups.read_cpu_seconds(*cpu) >= before + 0.15


def test_a_process_outside_the_containers_cgroup_is_refused():
    """A PID from another machine's engine names some process here, not the container."""
    with pytest.raises(cgroups.CgroupError, match="not the container's cgroup"):
        cgroups.container_usage(1, CONTAINER_ID)
    with pytest.raises(cgroups.CgroupError, match="No such file"):
        cgroups.container_usage(2**22 + 7, CONTAINER_ID)


# --- the timer ----------------------------------------------------------------------------------


def test_the_metrics_timer_runs_exactly_ops_metrics_every_minute_quietly():
    written = metrics_units(Path("/srv/cat collector"), "catcollector", "deploy")
    service = written["catcollector-metrics.service"]
    settings = dict(
        line.split("=", 1) for line in service.splitlines() if "=" in line and line[0] != "#"
    )
    assert shlex.split(settings["ExecStart"]) == ["/srv/cat collector/ops", "metrics"]
    assert settings["User"] == "deploy"
    assert settings["WorkingDirectory"] == "/srv/cat collector"
    assert settings["StandardOutput"] == "null"
    assert int(settings["TimeoutStartSec"]) == METRICS_TIMEOUT_S < 60
    timer = written["catcollector-metrics.timer"]
    assert "OnCalendar=minutely\n" in timer
    assert "AccuracySec=1s\n" in timer
    # The alert on a stale file waits for five missed minutes (monitoring/prometheus/alerts.yml).
    stale = re.search(r"node_textfile_mtime_seconds > (\d+)", (REPO / "monitoring" /
                      "prometheus" / "alerts.yml").read_text())  # fmt: skip
    assert int(stale.group(1)) >= 5 * 60
