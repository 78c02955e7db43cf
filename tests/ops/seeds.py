"""A site with data, made fast: cats inserted by SQL, photos written into the media volume by a
one-off container of the web image (small real PNGs of random pixels, about 7 KB each, so they
do not compress to nothing). Cat `N` (1-based) of the first `photos` has photo `seed-N.png`."""

from __future__ import annotations

SEED_PHOTOS = """
import os, sys
from pathlib import Path
from PIL import Image
folder = Path("/srv/media/cats")
folder.mkdir(exist_ok=True)
for number in range(1, int(sys.argv[1]) + 1):
    pixels = os.urandom(48 * 48 * 3)
    Image.frombytes("RGB", (48, 48), pixels).save(folder / f"seed-{number:05}.png")
"""
SEED_CATS = """
INSERT INTO cats_cat (name, breed, description, age, photo, created_at, updated_at)
SELECT 'Cat ' || g, 'Tabby', repeat('Likes boxes. ', 1 + g % 8), g % 20,
       CASE WHEN g <= {photos} THEN 'cats/seed-' || lpad(g::text, 5, '0') || '.png' ELSE '' END,
       now() - g * interval '1 minute', now()
FROM generate_series(1, {cats}) AS g;
"""


def psql(project, sql: str) -> str:
    return project.compose(
        "exec", "-T", "db", "psql", "--username=catcollector", "--dbname=catcollector",
        "--no-align", "--tuples-only", "--set=ON_ERROR_STOP=1", "--command", sql,
    ).stdout.strip()  # fmt: skip


def seed(project, cats: int, photos: int) -> None:
    """`cats` cats, the first `photos` of them with a photo, in a deployed project."""
    project.compose("run", "--rm", "--no-deps", "-T", "web", "python", "-c", SEED_PHOTOS,
                    str(photos))  # fmt: skip
    psql(project, SEED_CATS.format(cats=int(cats), photos=int(photos)))
