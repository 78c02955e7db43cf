"""Pages of cats, newest first, that cost the same with ten cats or a million.

A page is asked for by the cat it continues from (a cursor: that cat's created_at and id),
never by number, and nothing counts the table: OFFSET reads every row before the page and
COUNT(*) every row of the table, so both grow with the table (docs/benchmarks.md, against
table size). Each page is one index range scan of `cat_newest_first` (the model's ordering),
reading page size + 1 rows, the extra one saying whether there is more.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection
from django.db.models import BooleanField, QuerySet
from django.db.models.expressions import RawSQL

from app.cats.models import Cat

# "<created_at as microseconds since the epoch>.<id>": opaque to clients, checked here.
CURSOR_PATTERN = re.compile(r"([0-9]{1,18})\.([0-9]{1,18})")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Page:
    cats: list[Cat]
    older: str | None  # the cursor of the next page (older cats), None at the end
    newer: str | None  # the cursor of the previous page (newer cats), None at the start


def cursor_of(cat: Cat) -> str:
    delta = cat.created_at - EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return f"{micros}.{cat.pk}"


def parse_cursor(value: str) -> tuple[datetime, int] | None:
    """The (created_at, id) a cursor names, or None if it is not one this module wrote."""
    match = CURSOR_PATTERN.fullmatch(value)
    if match is None:
        return None
    micros, pk = int(match[1]), int(match[2])
    try:
        created_at = datetime.fromtimestamp(micros // 1_000_000, tz=UTC).replace(
            microsecond=micros % 1_000_000
        )
    except (OverflowError, OSError, ValueError):
        return None
    return created_at, pk


def _beyond(position: tuple[datetime, int], operator: str) -> RawSQL:
    # A row comparison, which PostgreSQL answers with one index range scan; the equivalent
    # `created_at < t OR (created_at = t AND id < n)` may read the whole table instead.
    table = connection.ops.quote_name(Cat._meta.db_table)
    return RawSQL(  # noqa: S611 (a fixed operator and the table name; values are parameters)
        f'({table}."created_at", {table}."id") {operator} (%s, %s)',
        position,
        output_field=BooleanField(),
    )


def page(cats: QuerySet, size: int, *, older_than: str = "", newer_than: str = "") -> Page:
    """`size` cats older than the cursor `older_than`, or newer than `newer_than`, or the
    newest. Cursors must have passed parse_cursor (the caller answers bad ones)."""
    if newer_than:
        position = parse_cursor(newer_than)
        rows = list(cats.filter(_beyond(position, ">")).order_by("created_at", "id")[: size + 1])
        more_newer = len(rows) > size
        rows = rows[:size][::-1]
        return Page(
            rows,
            older=cursor_of(rows[-1]) if rows else None,
            newer=cursor_of(rows[0]) if rows and more_newer else None,
        )
    ordered = cats.order_by("-created_at", "-id")
    if older_than:
        ordered = ordered.filter(_beyond(parse_cursor(older_than), "<"))
    rows = list(ordered[: size + 1])
    more_older = len(rows) > size
    rows = rows[:size]
    return Page(
        rows,
        older=cursor_of(rows[-1]) if more_older else None,
        newer=cursor_of(rows[0]) if rows and older_than else None,
    )
