"""Liveness and readiness answers. Both only read: probes run every few seconds forever."""

import logging

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse

logger = logging.getLogger(__name__)


def _answer(http_status: int, **body: str) -> JsonResponse:
    response = JsonResponse(body, status=http_status)
    response["Cache-Control"] = "no-store"
    return response


def liveness(request: HttpRequest) -> JsonResponse:
    """The process is up and serving. Touches nothing else, so a database outage does not
    make the orchestrator restart healthy web containers."""
    return _answer(200, status="ok")


def unapplied_migrations() -> list[str]:
    connection = connections[DEFAULT_DB_ALIAS]
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]


def readiness(request: HttpRequest) -> JsonResponse:
    """The database answers and the schema matches the code, so requests can be served."""
    try:
        pending = unapplied_migrations()
    except DatabaseError as exc:
        # The reason goes to the log; the public answer stays short and leaks no host names.
        logger.warning("readiness: database unavailable: %s", str(exc).strip())
        return _answer(503, status="unavailable", reason="database unavailable")
    if pending:
        logger.warning("readiness: unapplied migrations: %s", ", ".join(pending))
        return _answer(503, status="unavailable", reason=f"{len(pending)} unapplied migration(s)")
    return _answer(200, status="ok")
