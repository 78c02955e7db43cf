"""How long a restore takes as the site grows: per GB of database and per 1,000 photos.

Run from the repo root, with the engine up (the stand-in base images built by tests/run):

    .venv/bin/python -m tests.benchmarks.restore_times [--steps 0.1:0 0.5:0 1:0 1:1000 1:2000]

One project, as an operator has it (tests/ops/conftest.py's copy, deployed with `./ops deploy a
--build`), grows step by step; each step is `GB:PHOTOS`, the database's size and the photos'
count to reach. Cats carry 1 KB of random hex each (about half of it survives compression, as
real text does); photos are PNGs of random pixels, PHOTO_SIDE square (about 190 KB, which no
compression shrinks). At each step:

- `./ops backup` (base backup, pg_dump, the photos' tar, verification, the restore check);
- `./ops restore --time MOMENT --replace`, MOMENT the second after a WAL switch, with one write
  after it (as on a live site), once this VM's repository reaches it: pgBackRest's restore and
  WAL replay, and restic's photos;
- `./ops restore ARCHIVE --replace` of the step's archive: pg_restore and the photos' tar.

Each verb's time is its own wall clock, until its last line (the site serves again). The table
goes to stdout and, with --write, to docs/benchmarks/restore-times.json and the plot
docs/benchmarks/restore-times.png (docs/operations.md, Backups, reads both). The verbs are
timed once per step: a restore's time is mostly bytes moved, which the noise of a shared machine
moves by a few percent, not the order of magnitude this answers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

from tests.harness import REPO
from tests.harness.docker import run_id
from tests.harness.polling import wait_until
from tests.ops.conftest import LOAD_LIMITS, project_copy
from tests.ops.seeds import psql

PHOTO_SIDE = 256
DEFAULT_STEPS = ("0.1:0", "0.5:0", "1:0", "1:1000", "1:2000")
ROW_HEX_CHUNKS = 32  # 32 md5 digests: 1,024 hex characters per cat
ROWS_PER_INSERT = 100_000
ARCHIVED_BOUND_S = 120
RESULTS = REPO / "docs/benchmarks/restore-times.json"
PLOT = REPO / "docs/benchmarks/restore-times.png"
# Only numbers are formatted into these statements.
GROW_CATS = """
INSERT INTO cats_cat (name, breed, description, age, photo, created_at, updated_at)
SELECT 'Bench ' || g, 'Tabby',
       (SELECT string_agg(md5(random()::text || chunk), '')
        FROM generate_series(1, {chunks}) AS chunk WHERE g > 0),
       g % 20, '', now(), now()
FROM generate_series(1, {rows}) AS g;
"""
GROW_PHOTOS = """
import os, sys
from pathlib import Path
from PIL import Image
folder = Path("/srv/media/cats")
folder.mkdir(exist_ok=True)
start, end, side = (int(a) for a in sys.argv[1:4])
for number in range(start, end):
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    image.save(folder / f"bench-{number:06}.png")
"""
PHOTO_ROWS = """
INSERT INTO cats_cat (name, breed, description, age, photo, created_at, updated_at)
SELECT 'Photo ' || g, 'Tabby', '', 1, 'cats/bench-' || lpad(g::text, 6, '0') || '.png', now(), now()
FROM generate_series({start}, {end} - 1) AS g;
"""


def step(text: str) -> tuple[float, int]:
    gigabytes, _, photos = text.partition(":")
    try:
        return float(gigabytes), int(photos or 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not GB:PHOTOS, like 0.5:1000") from None


def database_bytes(project) -> int:
    return int(psql(project, "SELECT pg_database_size(current_database())"))


def grow_database(project, gigabytes: float) -> None:
    """Cats of 1 KB each until the database holds `gigabytes`."""
    target = gigabytes * 1024**3
    while (size := database_bytes(project)) < target:
        rows = min(ROWS_PER_INSERT, max(1_000, int((target - size) / 1_400)))
        psql(project, GROW_CATS.format(rows=rows, chunks=ROW_HEX_CHUNKS))
    psql(project, "VACUUM ANALYZE cats_cat")


def grow_photos(project, have: int, want: int) -> None:
    """Photos `have` .. `want` - 1 written into the media volume, each with its cat."""
    if want <= have:
        return
    project.compose("run", "--rm", "--no-deps", "-T", "web", "python", "-c", GROW_PHOTOS,
                    str(have), str(want), str(PHOTO_SIDE))  # fmt: skip
    psql(project, PHOTO_ROWS.format(start=have, end=want))


def media_bytes(project) -> int:
    used = project.compose("run", "--rm", "--no-deps", "-T", "--entrypoint", "du", "web",
                           "-sb", "/srv/media").stdout  # fmt: skip
    return int(used.split()[0])


def timed(project, *args: str) -> tuple[float, str]:
    started = time.monotonic()
    result = project.ops(*args)
    return round(time.monotonic() - started, 1), result.stdout


def archived_past(project, moment: datetime.datetime) -> bool:
    listed = project.ops("backups", check=False).stdout
    window = re.search(r"local repository: any second from \S+ to (\S+)", listed)
    newest = datetime.datetime.fromisoformat(window.group(1).replace("Z", "+00:00"))
    assert newest >= moment, listed
    return True


def measure(project, gigabytes: float, photos: int) -> dict:
    backup_s, backup_out = timed(project, "backup")
    archive = backup_out.strip().splitlines()[-1].strip()
    psql(project, "SELECT pg_switch_wal()")
    moment = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    # A write after the moment, as a live site has: recovery to a time stops at the first
    # commit after it, and fails when the archive holds none (the site idle since).
    time.sleep(1.5)
    psql(project, "UPDATE cats_cat SET age = age WHERE id = (SELECT min(id) FROM cats_cat)")
    psql(project, "SELECT pg_switch_wal()")
    wait_until(lambda: archived_past(project, moment), ARCHIVED_BOUND_S,
               what="the moment archived")  # fmt: skip
    shown = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    to_moment_s, _ = timed(project, "restore", "--time", shown, "--replace")
    from_archive_s, _ = timed(project, "restore", archive, "--replace")
    return {
        "step": f"{gigabytes:g}:{photos}",
        "database_gb": round(database_bytes(project) / 1024**3, 3),
        "archive_gb": round(Path(archive).stat().st_size / 1024**3, 3),
        "photos": photos,
        "photos_gb": round(media_bytes(project) / 1024**3, 3),
        "backup_s": backup_s,
        "restore_to_a_moment_s": to_moment_s,
        "restore_from_archive_s": from_archive_s,
    }


def plot(rows: list[dict]) -> None:
    import matplotlib  # noqa: PLC0415 (only the report needs it)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    without_photos = [r for r in rows if r["photos"] == 0]
    largest = max(r["database_gb"] for r in rows)
    with_photos = [r for r in rows if r["database_gb"] >= largest * 0.95]
    for axis, chosen, x, label in (
        (axes[0], without_photos, "database_gb", "database (GB), no photos"),
        (axes[1], with_photos, "photos", f"photos, database of {largest:.1f} GB"),
    ):
        for key, name in (("restore_to_a_moment_s", "restore --time"),
                          ("restore_from_archive_s", "restore ARCHIVE"),
                          ("backup_s", "backup")):  # fmt: skip
            axis.plot([r[x] for r in chosen], [r[key] for r in chosen], marker="o", label=name)
        axis.set_xlabel(label)
        axis.set_ylabel("seconds")
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(PLOT, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", nargs="+", type=step, default=[step(s) for s in DEFAULT_STEPS])
    parser.add_argument("--write", action="store_true", help="write the JSON and the plot")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="restore-times-") as parent:
        env = {"DJANGO_ALLOWED_HOSTS": "localhost", **LOAD_LIMITS}
        with project_copy(f"{run_id()}-restore-times", Path(parent), env) as project:
            project.ops("deploy", "a", "--build")
            photos = 0
            for gigabytes, wanted in args.steps:
                grow_database(project, gigabytes)
                grow_photos(project, photos, wanted)
                photos = max(photos, wanted)
                row = measure(project, gigabytes, photos)
                print(json.dumps(row), flush=True)
                rows.append(row)
    if args.write:
        RESULTS.write_text(json.dumps(rows, indent=1) + "\n")
        plot(rows)


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as error:
        raise SystemExit(f"{error.cmd} exited {error.returncode}: {error.stderr}") from None
