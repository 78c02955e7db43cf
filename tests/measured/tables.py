"""Every measured table of docs/: name -> Table, filling the block `<!-- measured: NAME -->`.

A row names the test that measures it; where that test fails above a bound, the bound is the
test's own constant, said in words here (the test file is the one home of its value).
"""

from __future__ import annotations

from tests.measured.render import Measured, Table, each, span, text
from tests.ops.test_monitoring import MONITORING as MONITORING_SERVICES


def m(measurement: str, reader) -> Measured:
    return Measured(measurement, reader)


def resent(measurement: str) -> Measured:
    return m(
        measurement, text("{b} / {n}", b=span("resent (balancer)", 0), n=span("resent (nginx)", 0))
    )


def deploy_row(verb: str, change: str, measurement: str) -> tuple:
    return (
        verb,
        change,
        m(measurement, span("requests", 0)),
        m(measurement, span("failed", 0)),
        resent(measurement),
        m(measurement, span("seconds")),
    )


DEPLOYS = Table(
    header=(
        "verb",
        "what changed",
        "requests during it",
        "failed",
        "resent (balancer / nginx)",
        "seconds",
    ),
    rows=(
        deploy_row("`./ops deploy b --build`", "CSS and an expand migration", "deploy a to b"),
        deploy_row(
            "`./ops rollback --keep-schema`", "back to a, b's schema kept", "rollback b to a"
        ),
        deploy_row(
            "`./ops deploy c --build`",
            "c exits at start: undone, exit 1",
            "failed deploy: c cannot start",
        ),
        deploy_row(
            "`./ops deploy d --build`",
            "d's migration fails: undone, exit 1",
            "failed deploy: d's migration fails",
        ),
        deploy_row(
            "`./ops deploy e --build`",
            "nginx site template, 2 web containers",
            "deploy with an nginx configuration change",
        ),
        (
            "`./ops deploy f --build`",
            "`nginx/nginx.conf` (a new proxy)",
            m("deploy with a new proxy", span("requests", 0)),
            m(
                "deploy with a new proxy",
                text(
                    "{b} through the balancer, {n} straight to nginx, all within {w}",
                    b=span("failed (balancer)", 0),
                    n=span("failed (nginx)", 0),
                    w=span("window_s", 2, " s"),
                ),
            ),
            resent("deploy with a new proxy"),
            m("deploy with a new proxy", span("seconds")),
        ),
        deploy_row(
            "`./ops deploy g --build`",
            "the worker switched on (`compose.worker.yaml`)",
            "deploy switching the worker on",
        ),
    ),
    numeric=(2, 5),
)

WORKER = Table(
    header=("what", "measured", "test"),
    rows=(
        *(
            (
                f"a thumbnail's peak memory against its estimate, {kind} at its limit",
                m(
                    f"thumbnail peak against its estimate ({extension})",
                    text(
                        "{p} against {e}",
                        p=span("peak_mib", 0, " MiB"),
                        e=span("estimate_mib", 0, " MiB"),
                    ),
                ),
                "`unit/test_thumbnails.py`",
            )
            for extension, kind in (
                ("png", "PNG (40 megapixels)"),
                ("jpg", "progressive 4:4:4 JPEG (30)"),
                ("webp", "WebP (11.4)"),
                ("gif", "GIF (40)"),
            )
        ),
        (
            "upload of a 1200x900 photo answered, with the worker on",
            m("worker: upload answered, thumbnail made", span("upload_s", 2, " s")),
            "`stack/test_worker.py`",
        ),
        (
            "its thumbnail in the API after that answer (polled every 0.2 s); the worker's task",
            m(
                "worker: upload answered, thumbnail made",
                text(
                    "{a}; {w}",
                    a=span("thumbnail_after_answer_s", 2, " s"),
                    w=span("worker_ms", 0, " ms"),
                ),
            ),
            "`stack/test_worker.py`",
        ),
        (
            "thumbnails per second per worker process, 9-megapixel PNGs (uploads sharing the "
            "CPUs); a task's median",
            m(
                "worker: thumbnails per second",
                text(
                    "{r}; {t}", r=span("per_second_per_process"), t=span("task_ms_median", 0, " ms")
                ),
            ),
            "`stack/test_worker.py`",
        ),
        (
            "a 40-megapixel PNG's thumbnail (queued during a deploy): a task's median",
            m("deploy with thumbnails queued", span("task_ms_median", 0, " ms")),
            "`ops/test_deploy.py`",
        ),
        (
            "worker container memory (2 pool processes): at rest after those, peak",
            m(
                "worker: thumbnails per second",
                text(
                    "{n}, {p}",
                    n=span("memory_now_mib", 0, " MiB"),
                    p=span("memory_peak_mib", 0, " MiB"),
                ),
            ),
            "`stack/test_worker.py`",
        ),
        (
            "nginx and Redis containers' memory after that work",
            m(
                "nginx and redis memory",
                text("{n}, {r}", n=span("nginx", 1, " MiB"), r=span("redis", 1, " MiB")),
            ),
            "`stack/test_worker.py`",
        ),
        (
            "a queued thumbnail task in Redis",
            m("a queued thumbnail task in redis", span("bytes", 0, " bytes")),
            "`faults/test_worker_faults.py`",
        ),
        (
            "health check through `docker exec`: heartbeat file's age, `celery inspect ping`",
            m(
                "worker health check",
                text("{h}, {p}", h=span("heartbeat_s", 2, " s"), p=span("ping_s", 2, " s")),
            ),
            "`stack/test_worker.py`",
        ),
        (
            "upload while Redis is stopped (thumbnail made in the request)",
            m("upload while redis is down", span("seconds", 2, " s")),
            "`faults/test_worker_faults.py`",
        ),
        (
            "`./ops deploy` switching the worker on, under load: seconds, requests, failed",
            m(
                "deploy switching the worker on",
                text(
                    "{s}, {r}, {f}",
                    s=span("seconds", 1, " s"),
                    r=span("requests", 0),
                    f=span("failed", 0),
                ),
            ),
            "`ops/test_deploy.py`",
        ),
        (
            "`./ops deploy` with 10 thumbnails of 40-megapixel PNGs queued; all 10 made",
            m("deploy with thumbnails queued", span("seconds", 1, " s")),
            "`ops/test_deploy.py`",
        ),
    ),
)

BACKUPS = Table(
    header=("what", "measured"),
    rows=(
        (
            "archive size (the dump compressed by pg_dump, the photos as they are)",
            m("backup and restore", span("archive_bytes", 0, " bytes")),
        ),
        (
            "`./ops backup` (dump, photos, verification, prune)",
            m("backup and restore", span("backup_s", 1, " s")),
        ),
        (
            "`./ops backup` while 3 visitors read and a writer adds cats: seconds, requests, "
            "failed",
            m(
                "backup under load",
                text(
                    "{s}, {r}, {f}",
                    s=span("seconds", 1, " s"),
                    r=span("requests", 0),
                    f=span("failed", 0),
                ),
            ),
        ),
        (
            "`./ops restore` into a freshly wiped stack, until the site serves again",
            m("backup and restore", span("restore_s", 1, " s")),
        ),
        (
            "of which the site answered 503 and the maintenance page (polled every 0.1 s, no 502)",
            m("backup and restore", span("maintenance_s", 1, " s")),
        ),
        (
            "`./ops restore` of an archive from release a into release b (one migration applied)",
            m("restore across a migration", span("seconds", 1, " s")),
        ),
    ),
)

ARCHIVING = Table(
    header=("what", "measured", "the test fails"),
    rows=(
        (
            "a cat acknowledged until its WAL segment is on the remote (nothing forced; "
            "`archive_timeout` 30 s)",
            m("archive lag", span("database_s", 1, " s")),
            "not there within 60 s",
        ),
        (
            "a photo acknowledged until a new snapshot is on the remote",
            m("archive lag", span("photos_s", 1, " s")),
            "not there within 60 s",
        ),
        (
            "the VM killed while a writer adds a cat every 0.2 s: writes acknowledged, lost",
            m("disaster drill", text("{a}, {l}", a=span("acknowledged", 0), l=span("lost", 0))),
            "",
        ),
        (
            "the oldest write lost, before the VM died (the RPO seen)",
            m("disaster drill", span("oldest_lost_before_death_s", 1, " s")),
            "above 60 s",
        ),
        (
            "photos acknowledged, lost (a cat not restored, or restored without its photo)",
            m(
                "disaster drill",
                text("{a}, {l}", a=span("photos_acknowledged", 0), l=span("photos_lost", 0)),
            ),
            "",
        ),
        (
            "the oldest photo lost, before the VM died",
            m("disaster drill", span("oldest_photo_lost_before_death_s", 1, " s")),
            "above 60 s",
        ),
        (
            "`./ops recover` on a new VM from the remote alone, until the site serves: database, "
            "photos, seconds",
            m(
                "disaster drill",
                text(
                    "{d}, {p}, {s}",
                    d=span("database_mb", 0, " MB"),
                    p=span("photos", 0, " photos"),
                    s=span("recover_s", 1, " s"),
                ),
            ),
            "",
        ),
        (
            "`./ops restore --time` on the same site, until the site serves",
            m("restore to a moment", span("seconds", 1, " s")),
            "a cat acknowledged before the moment missing, or one sent after it back",
        ),
        (
            "the restore check of `./ops backup` (10,000 cats)",
            m("restore check", span("seconds", 1, " s")),
            "row counts differ",
        ),
    ),
)

STACK = Table(
    header=("what", "measured", "test (fails when)"),
    rows=(
        (
            "fresh `up -d --wait` (images built, empty volumes) until all healthy",
            m("fresh up --wait to healthy", span("seconds", 1, " s")),
            "`stack/test_site.py` (above 180 s)",
        ),
        (
            "both web containers restarted together, waiting for the database meanwhile: from "
            "healthy to the site serving",
            m("web restarted", span("served_after_healthy_s", 1, " s")),
            "`ops/test_deploy.py`, status (above 3 s; nginx's default pause gave 10 s)",
        ),
        (
            "`up -d --force-recreate web` under load: requests failing for",
            m("recreate web under load", span("error_window_s", 1, " s")),
            "`stack/test_recreate.py` (a failure 15 s after web is healthy)",
        ),
        (
            "… the last failure, from when Docker reported the new web healthy (negative: before)",
            m("recreate web under load", span("last_failure_after_web_healthy_s", 2, " s")),
            "`stack/test_recreate.py`",
        ),
        (
            "web killed (SIGKILL to its PID 1) until served again; nginx's slowest error meanwhile",
            m(
                "web killed",
                text(
                    "{b}; {e}", b=span("back_after_s", 1, " s"), e=span("slowest_error_s", 2, " s")
                ),
            ),
            "`faults/test_outages.py` (an error slower than 8 s)",
        ),
        (
            "database stopped, then started: until `/readyz` answers 200",
            m("readyz back after db start", span("seconds", 1, " s")),
            "`faults/test_outages.py` (above 60 s)",
        ),
        (
            "database back: last failed request after it answers again",
            m("requests after the database returned", span("last_failure_after_s", 2, " s")),
            "`faults/test_outages.py` (2.5 s)",
        ),
        (
            "database down 20 s: slowest `/healthz` meanwhile (16 clients, 4 sync workers), of "
            "how many probes",
            m(
                "requests after the database returned",
                text(
                    "{s}, of {n}",
                    s=span("slowest_liveness_during_outage_s", 2, " s"),
                    n=span("liveness_probes", 0),
                ),
            ),
            "`faults/test_outages.py` (2 s, or fewer than 9 probes)",
        ),
        (
            "16 photos at the size limits checked at once (2 CPUs): accepted, web's peak memory "
            "of its 1,024 MiB, seconds for the burst, retries after a 503",
            m(
                "photos at the limits checked at once",
                text(
                    "{a} of 16, {p}, {s}, {r}",
                    a=span("accepted", 0),
                    p=span("web_memory_peak_mib", 0, " MiB"),
                    s=span("seconds", 1, " s"),
                    r=span("retried_after_503", 0),
                ),
            ),
            "`faults/test_uploads.py` (any failure)",
        ),
        (
            "photo-check slots web sized from its memory limit (2 CPUs, 4 workers)",
            m(
                "photo-check slots",
                text(
                    "{s} slots, {m} for checks",
                    s=each("slots"),
                    m=span("memory_for_checks_mib", 0, " MiB"),
                ),
            ),
            "`faults/test_uploads.py`",
        ),
        (
            "one password check in web (Django's hasher), CPU",
            m("password check", span("cpu_s", 2, " s")),
            "`faults/test_login_flood.py`",
        ),
        (
            "sign-in flood from one client: attempts, refused (429), password checks",
            m(
                "login flood",
                text(
                    "{a}, {r}, {c}",
                    a=span("attempts", 0),
                    r=span("refused_429", 0),
                    c=span("password_checks", 0),
                ),
            ),
            "`faults/test_login_flood.py` (under 90 % refused, or more checks than the lockout "
            "allows)",
        ),
        (
            "another visitor's p95 page time, idle (warmed up) and during that flood",
            m(
                "login flood",
                text(
                    "{i}, {f}",
                    i=span("visitor_p95_idle_ms", 1, " ms"),
                    f=span("visitor_p95_flood_ms", 1, " ms"),
                ),
            ),
            "`faults/test_login_flood.py` (above twice idle, or idle + 10 ms)",
        ),
    ),
)

SWARM = Table(
    header=("what", "measured", "the test fails"),
    rows=(
        (
            "`docker stack deploy` (images built, empty volumes) until nginx serves from two "
            "healthy web tasks",
            m("swarm deploy", span("seconds until serving", 1, " s")),
            "above 180 s",
        ),
        (
            "`docker service scale` web from 2 to 3, until all three are healthy behind nginx",
            m("swarm scale web to 3", span("seconds", 1, " s")),
            "above 60 s",
        ),
        (
            "30 requests after the scale, per task",
            m("swarm scale web to 3", each("requests per task", lambda v: ", ".join(map(str, v)))),
            "unless all three serve",
        ),
        (
            "rolling update v1 to v2, three tasks, publish first: requests, failed, resent "
            "(balancer / nginx), seconds (of which the publish job)",
            m(
                "swarm rolling update v1 to v2",
                text(
                    "{r}, {f}, {b} / {n}, {s} ({p})",
                    r=span("requests", 0),
                    f=span("failed", 0),
                    b=span("resent (balancer)", 0),
                    n=span("resent (nginx)", 0),
                    s=span("seconds (publish, then web)", 1, " s"),
                    p=span("publish seconds", 1),
                ),
            ),
            "on any failed request",
        ),
        (
            "nginx's upstream errors during that update, each retried on another task",
            m(
                "swarm rolling update v1 to v2",
                each(
                    "nginx upstream errors",
                    lambda v: ", ".join(f"{n} `{k}`" for k, n in v.items()) or "none",
                ),
            ),
            "",
        ),
        (
            "update to a release that never passes its health check (`WEB_START_PERIOD=10s`): "
            "requests, failed, rolled back after",
            m(
                "swarm update to a never-healthy release",
                text(
                    "{r}, {f}, {s}",
                    r=span("requests", 0),
                    f=span("failed", 0),
                    s=span("seconds until rolled back", 1, " s"),
                ),
            ),
            "above 150 s, or on any failed request",
        ),
    ),
)

REBOOT = Table(
    header=("what", "measured", "the test fails"),
    rows=(
        (
            "the Docker daemon away (stopped with the stack up, started again)",
            m("reboot", span("daemon_away_s", 1, " s")),
            "",
        ),
        (
            "from the daemon answering to the site's first page",
            m("reboot", span("site_back_after_daemon_s", 1, " s")),
            "above 120 s",
        ),
        (
            "`/readyz` answered 200 while the page asked right after it failed, of the samples "
            "taken every 0.1 s",
            m(
                "reboot",
                text("{r} of {n}", r=span("ready_while_a_page_failed", 0), n=span("samples", 0)),
            ),
            "above 0",
        ),
        (
            "writes acknowledged just before, found once each afterwards",
            m("reboot", span("acknowledged_writes", 0)),
            "any missing or doubled",
        ),
        (
            "the backup timer's catch-up run, started as the daemon answered: waited for the "
            "database",
            m("reboot", span("backup_waited_s", 0, " s")),
            "if it fails",
        ),
    ),
)

MONITORING = Table(
    header=("what", "measured", "the test fails"),
    rows=(
        (
            "web stopped, until `SiteDown` reaches the webhook (scrape and evaluation every 5 s; "
            "the rule's `for` and Alertmanager's wait as shipped)",
            m("SiteDown reaches the webhook", span("seconds", 1, " s")),
            "above SITE_DOWN_BOUND_S: the sum of those, and room for a busy machine",
        ),
        (
            "a burst of 500s (2 a second) while `/readyz` answers 200, until `HighErrorRatio` "
            "fires, and until it reaches the webhook",
            m(
                "HighErrorRatio from a burst of 500s",
                text("{f}, {w}", f=span("firing_s", 1, " s"), w=span("webhook_s", 1, " s")),
            ),
            "not firing within ERROR_RATIO_BOUND_S",
        ),
        (
            "the newest archive 27 hours old, from the `./ops metrics` that saw it until "
            "`BackupTooOld` reaches the webhook",
            m("BackupTooOld reaches the webhook", span("seconds", 1, " s")),
            "above BACKUP_STALE_BOUND_S",
        ),
        (
            "the series Prometheus holds (the head block) after the scenes (the worker on in "
            "all but the first run)",
            m("prometheus head series", span("series", 0)),
            "",
        ),
        (
            "one `./ops metrics` run",
            m("ops metrics run", span("seconds", 2, " s")),
            "",
        ),
        *(
            (
                f"memory after the scenes: {label}",
                m("monitoring set memory", span(key, 1, " MiB")),
                "",
            )
            for label, key in (
                *((service, service) for service in MONITORING_SERVICES),
                ("the seven together", "total"),
            )
        ),
    ),
)

# tests/run's own table: kept only from a run in which every layer passed.
RUN_TABLE = "test-run"
LAYERS = (
    "venv",
    "monitoring tools",
    "engine",
    "base-images",
    "layer lint",
    "layer unit",
    "layer standins",
    "layer image",
    "layer stack",
    "layer ops",
    "layer swarm",
    "layer faults",
    "leftovers",
    "total",
)
RUN = Table(
    header=("phase", "seconds"),
    rows=tuple((phase, m("tests/run, every layer (CI=true)", span(phase, 1))) for phase in LAYERS),
    numeric=(1,),
)

TABLES: dict[str, Table] = {
    "deploys": DEPLOYS,
    "worker": WORKER,
    "backups": BACKUPS,
    "archiving": ARCHIVING,
    "stack": STACK,
    "swarm": SWARM,
    "reboot": REBOOT,
    "monitoring": MONITORING,
    RUN_TABLE: RUN,
}
