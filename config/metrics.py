"""Django's metrics for Prometheus: what is measured, and /metrics on gunicorn's metrics port
(docs/operations.md, Monitoring).

Every metric's name, labels and buckets are here. gunicorn's processes share the values
through files (config/metrics_files.py); outside gunicorn (tests, manage.py) a process keeps
its own.

/metrics is answered for connections that arrived on GUNICORN_METRICS_PORT and for no other:
the port is the socket's, as gunicorn (SERVER_PORT) and uvicorn (scope["server"]) report it,
which no header can change. nginx proxies to GUNICORN_PORT only, and Django itself has no
/metrics URL, so no path through nginx reaches the metrics.
"""

import time

from django.conf import settings
from django.http import HttpResponse, HttpResponseNotFound
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import InfoMetricFamily

from config import metrics_files

PATH = "/metrics"
# Fine steps where pages fall (milliseconds to tens of them), coarser ones up to a photo
# upload's seconds, and on to where slow requests still differ (gunicorn kills one at 30 s).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Any other word a client sends as its method is counted as "other": labels stay few.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# A path no URL pattern matches (a 404, whitenoise's static files).
UNRESOLVED = "<unresolved>"

REQUESTS = Counter(
    "catcollector_http_requests",
    "Responses Django sent, by view, method and status.",
    ["view", "method", "status"],
)
DURATION = Histogram(
    "catcollector_http_request_duration_seconds",
    "Time Django took to answer, by view and method; its sum over time is the workers' busy time.",
    ["view", "method"],
    buckets=DURATION_BUCKETS,
)
IN_PROGRESS = Gauge(
    "catcollector_http_requests_in_progress",
    "Requests Django is answering.",
    multiprocess_mode="livesum",
)
THREADS = Gauge(
    "catcollector_gunicorn_threads",
    "Requests gunicorn's live workers can answer at once (workers x GUNICORN_THREADS; wsgi only).",
    multiprocess_mode="livesum",
)


class RequestMetricsMiddleware:
    """Counts and times every request Django answers. After HealthCheckMiddleware: the load
    balancer's probes, every few seconds, would otherwise fill the fastest bucket and drown
    the pages' latency (the blackbox probe watches them instead)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        IN_PROGRESS.inc()
        started = time.perf_counter()
        try:
            response = self.get_response(request)
        finally:
            IN_PROGRESS.dec()
        elapsed = time.perf_counter() - started
        match = request.resolver_match
        view = match.view_name if match else UNRESOLVED
        method = request.method if request.method in METHODS else "other"
        REQUESTS.labels(view, method, str(response.status_code)).inc()
        DURATION.labels(view, method).observe(elapsed)
        return response


class MetricsEndpointMiddleware:
    """Answers every request that arrived on the metrics port, and only those: /metrics with
    the metrics, any other path 404. First in MIDDLEWARE: Prometheus asks for the container's
    address over plain HTTP, which the host check and the HTTPS redirect would refuse, and a
    scrape is no request of the site's to count."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.port = str(settings.METRICS_PORT) if settings.METRICS_PORT else None

    def __call__(self, request):
        if self.port is None or request.META.get("SERVER_PORT") != self.port:
            return self.get_response(request)
        if request.path_info != PATH:
            return HttpResponseNotFound()
        return HttpResponse(exposition(), content_type=CONTENT_TYPE_PLAIN_0_0_4)


class ReleaseInfo:
    """catcollector_release_info{version}: the release this container runs (APP_VERSION). A
    constant, so it is written into no file."""

    def collect(self):
        family = InfoMetricFamily("catcollector_release", "The release web runs.")
        family.add_metric([], {"version": settings.RELEASE})
        yield family


def exposition() -> bytes:
    """The metrics in Prometheus' text format: every process's (through the files, when there
    are files) and the release."""
    registry = CollectorRegistry(auto_describe=False)
    folder = metrics_files.directory()
    if folder is None:
        registry.register(REGISTRY)
    else:
        metrics_files.FolderCollector(registry, path=str(folder))
    registry.register(ReleaseInfo())
    return generate_latest(registry)
