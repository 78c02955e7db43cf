import uuid

from django.http import HttpRequest

from config.logging import REQUEST_ID_HEADER, clean_request_id, request_id


class RequestIdMiddleware:
    """Tag every log line written while handling a request with that request's id.

    nginx sets X-Request-ID on every proxied request; a missing or unsafe value (gunicorn
    reached directly, or a forged header) gets a fresh id instead. Sits first in MIDDLEWARE so
    that errors logged by Django's own handlers carry the id too.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        value = clean_request_id(request.headers.get(REQUEST_ID_HEADER)) or uuid.uuid4().hex
        request.request_id = value
        token = request_id.set(value)
        try:
            return self.get_response(request)
        finally:
            # Threads serve many requests; the next one must not inherit this id.
            request_id.reset(token)


def client_address(request: HttpRequest) -> str:
    """The visitor's address: nginx's X-Forwarded-For, which it always sets to the one address
    it believes (the realip module, NGINX_TRUSTED_PROXIES), else the peer. Only nginx reaches
    gunicorn (the trust model, docs/image.md), so a client cannot choose this value."""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    return forwarded.rsplit(",", 1)[-1].strip() or request.META.get("REMOTE_ADDR", "")
