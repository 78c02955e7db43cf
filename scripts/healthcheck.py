"""Docker HEALTHCHECK: is gunicorn answering /healthz on this container's port?

Liveness only (no database), and no Django import, so a probe costs a few milliseconds and
still answers while the database is down. Exit 0 when healthy, 1 otherwise (Docker's contract).
`healthcheck.py /readyz` asks readiness instead (tools/ops does, before a release gets traffic).
"""

import http.client
import os
import sys

TIMEOUT_S = 3


def main(path: str = "/healthz") -> int:
    connection = http.client.HTTPConnection(
        "127.0.0.1", int(os.environ["GUNICORN_PORT"]), timeout=TIMEOUT_S
    )
    try:
        connection.request("GET", path)
        status = connection.getresponse().status
    except OSError as error:
        print(f"unhealthy: {error}")
        return 1
    finally:
        connection.close()
    if status != 200:
        print(f"unhealthy: {path} answered {status}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
