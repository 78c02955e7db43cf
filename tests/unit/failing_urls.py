"""A URLconf whose views fail, for the error reports' tests (test_errors.py)."""

from django.http import HttpResponse
from django.urls import path


def fails(request):
    raise RuntimeError("the view failed")


def unavailable(request):
    """A 503 answered on purpose, as /readyz does during an outage: no error to report."""
    return HttpResponse("busy", status=503)


urlpatterns = [path("fails/", fails), path("unavailable/", unavailable)]
