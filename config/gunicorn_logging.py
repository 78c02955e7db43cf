"""gunicorn's JSON logging: its own messages and one access line per request, in both modes.

config.gunicorn installs these (logger_class, logconfig_dict); config.uvicorn_worker feeds the
same access line under asgi. The line carries the common keys of config.logging plus method,
path, status, duration_ms, remote_addr and bytes (docs/image.md, Access log).
"""

import ipaddress
import logging

from gunicorn.glogging import Logger

from config.logging import clean_request_id, logging_config


class JsonAccessLogger(Logger):
    """gunicorn's logger with one JSON object per request.

    The sync and gthread workers call access() themselves; config.uvicorn_worker calls it
    from a small ASGI wrapper, so both modes write the same keys.
    """

    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled:
            return
        status = resp.status
        if isinstance(status, str):
            status = int(status.split(None, 1)[0])
        method = environ.get("REQUEST_METHOD", "-")
        path = environ.get("PATH_INFO", "-")
        self.access_log.info(
            "%s %s %s",
            method,
            path,
            status,
            extra={
                "request_id": clean_request_id(environ.get("HTTP_X_REQUEST_ID")),
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(
                    request_time.seconds * 1000 + request_time.microseconds / 1000, 1
                ),
                "remote_addr": self.client_address(environ),
                "bytes": getattr(resp, "sent", None) or 0,
            },
        )

    def client_address(self, environ: dict) -> str:
        """The client as a trusted proxy (forwarded_allow_ips) reports it: the last
        X-Forwarded-For hop, which nginx appends. Otherwise the peer itself."""
        peer = environ.get("REMOTE_ADDR", "-")
        forwarded = environ.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded and self._trusts(peer):
            return forwarded.rsplit(",", 1)[-1].strip()
        return peer

    def _trusts(self, peer: str) -> bool:
        if "*" in self.cfg.forwarded_allow_ips:
            return True
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.cfg.forwarded_allow_networks())


class PlainMessages(logging.Filter):
    """uvicorn attaches an ANSI-coloured copy of its messages; keep it out of the JSON."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("color_message", None)
        return True


def logconfig_dict(level: str) -> dict:
    """Django's logging configuration (config.logging) plus gunicorn's two loggers.

    They keep a handler of their own rather than propagating: the uvicorn worker hands
    gunicorn.error's handlers to uvicorn's loggers. Access lines are INFO, so that logger
    stays at INFO whatever the level.
    """
    config = logging_config(level)
    config["filters"]["plain"] = {"()": PlainMessages}
    config["handlers"]["stdout"]["filters"].append("plain")
    for name, logger_level in (("gunicorn.error", level), ("gunicorn.access", "INFO")):
        config["loggers"][name] = {
            "level": logger_level,
            "handlers": ["stdout"],
            "propagate": False,
        }
    return config
