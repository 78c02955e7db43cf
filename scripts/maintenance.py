"""Take the site out of rotation, or put it back: `maintenance.py on REASON` / `off`.

`on` writes the flag file `maintenance` in the site volume; while it exists nginx answers
/readyz and /healthz with 503 (the load balancer drains the VM) and every page with 503 and
the release's maintenance page, without asking web, which may be stopped
(nginx/templates/site.conf.template). `off` removes it. Both take effect at the next request:
nginx checks the file on each one, no reload. tools/ops (./ops restore) runs it in a one-off
container of the web image with the site volume, which nginx mounts read-only. Idempotent.
"""

import argparse
import datetime
import json
import os
import sys
import tempfile

from config.release import SITE_DIR

FLAG = SITE_DIR / "maintenance"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("state", choices=("on", "off"))
    parser.add_argument("reason", nargs="?", default="maintenance")
    args = parser.parse_args()
    if not SITE_DIR.is_dir():
        sys.exit(f"error: {SITE_DIR} does not exist; mount the site volume there")
    if args.state == "off":
        FLAG.unlink(missing_ok=True)
        print("maintenance off: the site answers again", flush=True)
        return
    since = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    handle, partial = tempfile.mkstemp(dir=SITE_DIR, prefix=".maintenance.")
    with os.fdopen(handle, "w") as out:
        json.dump({"reason": args.reason, "since": since}, out)
    os.chmod(partial, 0o644)
    # One rename: nginx never sees half a flag (it only checks that the file exists anyway).
    os.replace(partial, FLAG)
    print(f"maintenance on: {args.reason}", flush=True)


if __name__ == "__main__":
    main()
