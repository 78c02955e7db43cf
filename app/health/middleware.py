from django.http import HttpResponseNotAllowed

from app.health.probes import liveness, readiness

PROBES = {"/healthz": liveness, "/readyz": readiness}


class HealthCheckMiddleware:
    """Answer /healthz and /readyz before anything can refuse them.

    Load balancers probe with the VM's IP as Host and over plain HTTP, so the probes must skip
    ALLOWED_HOSTS validation and the HTTPS redirect (both happen in later middleware) without
    relaxing either for any other path. Sessions, CSRF and auth never see a probe either.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        probe = PROBES.get(request.path_info)
        if probe is None:
            return self.get_response(request)
        if request.method not in {"GET", "HEAD"}:
            return HttpResponseNotAllowed(["GET", "HEAD"])
        return probe(request)
