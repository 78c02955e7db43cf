"""Free TCP ports on 127.0.0.1: tests publish and listen on loopback only."""

import socket


def free_port() -> int:
    """A port nothing listens on right now (another process could still take it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
