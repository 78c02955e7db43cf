"""The backup archive: one plain tar file per backup, written and checked without the engine.

Members, in this order:
  db.dump        pg_dump's custom format (compressed by pg_dump; zlib's checks catch damage
                 inside its data when pg_restore reads it back)
  media.tar      the photos (the media volume), as scripts/media_volume.py packs them
  secrets.tar    only with `./ops backup --with-secrets`
  manifest.json  what the archive holds: project, app version, migrations, sizes, checksums
  SHA256SUMS     sha256 of every member above, in `sha256sum` format (`sha256sum -c` works on
                 an extracted archive)
  SHA256SUMS.hmac  HMAC-SHA256 of SHA256SUMS, keyed from the stack's backup key (format 2)

The sums prove an archive whole; the HMAC proves it was made by a stack holding the backup key,
which lives in the secrets volume and off the VM, never beside the archives: an archive built
around another dump, even with this module's own writer, is refused by a restore (which loads
every row it holds). Format 1 archives, made before, have no HMAC: listed and checked as
before, never restored.

Every byte of the file is covered by a check: tar headers by their own checksum, member data by
SHA256SUMS (which covers the manifest too, and is itself covered because any change to it
breaks a listed sum or name), and the padding between and after members must be zeros. So a
truncated file, a flipped byte anywhere and a missing member are all refused, with the reason.

A member's size is only known once it has been streamed in (a dump straight from pg_dump), so
the writer puts a placeholder header first and rewrites it when the member ends; a reader
never sees the file under its final name before that (tools/ops/backup.py writes a temporary
name and renames it once verified).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import io
import json
import os
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BLOCK = tarfile.BLOCKSIZE
CHUNK = 1 << 20
FORMAT_VERSION = 2
# Format 1: the same, without AUTH.
READABLE_FORMATS = (1, FORMAT_VERSION)
DUMP, MEDIA, SECRETS, MANIFEST, SUMS, AUTH = (
    "db.dump", "media.tar", "secrets.tar", "manifest.json", "SHA256SUMS", "SHA256SUMS.hmac",
)  # fmt: skip
ORDER = (DUMP, MEDIA, SECRETS, MANIFEST, SUMS, AUTH)
REQUIRED = (DUMP, MEDIA, MANIFEST, SUMS)
# The archives' own key is derived from the backup key, never the key that encrypts the
# repositories itself.
AUTH_PURPOSE = b"catcollector archive authentication"
SUFFIX = ".tar"
PARTIAL_SUFFIX = ".partial"
# <project>-<UTC time>.tar: the name sorts by time and says whose archive it is.
NAME = re.compile(r"^(?P<project>[a-z0-9][a-z0-9_-]*)-(?P<time>\d{8}T\d{6}Z)\.tar$")
TIME_FORMAT = "%Y%m%dT%H%M%SZ"
# Read whole, so bounded first: a manifest lists a release's migrations (a few kB for most
# apps), SHA256SUMS five lines.
MANIFEST_MAX_BYTES = 1 << 20
SUMS_MAX_BYTES = AUTH_MAX_BYTES = 4096
# What readers of a manifest use, with its type; "secrets" may be absent.
MANIFEST_FIELDS = {
    "project": str, "created": str, "app_version": str, "migrations": list, "photos": dict,
    "members": dict,
}  # fmt: skip


class ArchiveError(Exception):
    """The archive cannot be trusted; the message says why, for the operator."""


def authentication_key(backup_key: str) -> bytes:
    return hmac.new(backup_key.encode(), AUTH_PURPOSE, hashlib.sha256).digest()


def seal(key: bytes, sums: bytes) -> bytes:
    """AUTH's contents for a SHA256SUMS of `sums`."""
    return hmac.new(key, sums, hashlib.sha256).hexdigest().encode() + b"\n"


def archive_name(project: str, when: datetime.datetime) -> str:
    return f"{project}-{when.astimezone(datetime.timezone.utc).strftime(TIME_FORMAT)}{SUFFIX}"


def parse_name(name: str) -> tuple[str, datetime.datetime] | None:
    """(project, time) from an archive's file name, or None for any other file."""
    match = NAME.match(name)
    if not match:
        return None
    when = datetime.datetime.strptime(match["time"], TIME_FORMAT)
    return match["project"], when.replace(tzinfo=datetime.timezone.utc)


def padding(size: int) -> int:
    return -size % BLOCK


def canonical_header(info: tarfile.TarInfo) -> bytes:
    """The one header block the writer makes for `info`. GNU format keeps a short name's
    header at one block for any size (base-256 above 8 GiB), so a placeholder block can be
    overwritten in place once the size is known."""
    return info.tobuf(format=tarfile.GNU_FORMAT, encoding="utf-8", errors="strict")


# --- writing -----------------------------------------------------------------------------------


class Writer:
    """Members appended one by one to an open binary file (seekable), each hashed as written."""

    def __init__(self, out: io.BufferedIOBase, mtime: float, mode: int) -> None:
        self.out = out
        self.mtime = int(mtime)
        self.mode = mode
        self.sums: dict[str, str] = {}
        self.sizes: dict[str, int] = {}

    def member(self, name: str, chunks: Iterator[bytes]) -> int:
        """Write `name` from `chunks`; returns its size."""
        header_at = self.out.tell()
        self.out.write(bytes(BLOCK))
        digest = hashlib.sha256()
        size = 0
        for chunk in chunks:
            self.out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
        self.out.write(bytes(padding(size)))
        end = self.out.tell()
        self.out.seek(header_at)
        self.out.write(self.header(name, size))
        self.out.seek(end)
        self.sums[name] = digest.hexdigest()
        self.sizes[name] = size
        return size

    def header(self, name: str, size: int) -> bytes:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = self.mtime
        info.mode = self.mode
        info.uname = info.gname = ""
        block = canonical_header(info)
        if len(block) != BLOCK:
            raise ValueError(f"member name {name!r} needs more than one header block")
        return block

    def finish(self, manifest: dict, key: bytes) -> None:
        """The manifest (with every data member's size and sum), SHA256SUMS, its HMAC with
        `key` (authentication_key), the end marker."""
        manifest = {**manifest, "format": FORMAT_VERSION, "members": {
            name: {"size": self.sizes[name], "sha256": self.sums[name]} for name in self.sums
        }}  # fmt: skip
        self.member(MANIFEST, iter([json.dumps(manifest, indent=2, sort_keys=True).encode()]))
        listing = "".join(f"{self.sums[name]}  {name}\n" for name in self.sums).encode()
        self.member(SUMS, iter([listing]))
        self.member(AUTH, iter([seal(key, listing)]))
        self.out.write(bytes(2 * BLOCK))


# --- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    name: str
    offset: int
    size: int


class Window(io.RawIOBase):
    """A read-only view of [offset, offset + size) of a file: one member's data."""

    def __init__(self, path: Path, member: Member) -> None:
        self.file = path.open("rb")
        self.start = member.offset
        self.size = member.size
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer) -> int:
        wanted = min(len(buffer), self.size - self.position)
        if wanted <= 0:
            return 0
        self.file.seek(self.start + self.position)
        data = self.file.read(wanted)
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)

    def close(self) -> None:
        self.file.close()
        super().close()


def chunks_of(path: Path, member: Member) -> Iterator[bytes]:
    with Window(path, member) as window:
        while chunk := window.read(CHUNK):
            yield chunk


def read_member(path: Path, member: Member) -> bytes:
    return b"".join(chunks_of(path, member))


def _zeros(handle: io.BufferedReader, start: int, length: int) -> bool:
    handle.seek(start)
    remaining = length
    while remaining > 0:
        chunk = handle.read(min(CHUNK, remaining))
        if not chunk or chunk.count(0) != len(chunk):
            return False
        remaining -= len(chunk)
    return True


def _headers(path: Path) -> tuple[int, list[tarfile.TarInfo]]:
    """The file's size and the member headers tarfile finds in it."""
    try:
        file_size = path.stat().st_size
    except OSError as error:
        raise ArchiveError(f"not readable ({error.strerror})") from None
    # The writer only ever writes whole blocks; a cut anywhere else shows here.
    if file_size == 0 or file_size % BLOCK:
        raise ArchiveError(f"truncated: {file_size} bytes is not a whole number of tar blocks")
    try:
        with tarfile.open(path, "r:") as tar:
            return file_size, tar.getmembers()
    except tarfile.ReadError as error:
        if "unexpected end of data" in str(error):
            raise ArchiveError("truncated: the file ends inside a member") from None
        raise ArchiveError(f"not a readable archive ({error})") from None
    except (OSError, tarfile.TarError) as error:
        raise ArchiveError(f"not a readable archive ({error})") from None


def members(path: Path) -> dict[str, Member]:
    """The members, after checking the file's structure: known names in order, each header
    valid, every member's data inside the file, and zeros in every padding and after the last
    member. Raises ArchiveError naming the first problem."""
    file_size, infos = _headers(path)
    names = [info.name for info in infos]
    for info in infos:
        if info.name not in ORDER or not info.isfile():
            raise ArchiveError(f"unexpected member {info.name!r}")
    if names != [name for name in ORDER if name in names]:
        raise ArchiveError(f"members out of order or repeated: {', '.join(names)}")
    found: dict[str, Member] = {}
    expected_offset = 0
    with path.open("rb") as handle:
        for info in infos:
            if info.offset != expected_offset:
                raise ArchiveError(f"unexpected bytes before member {info.name!r}")
            # tarfile's header checksum skips a few bytes (the one after the checksum's NUL):
            # the header must be exactly the one the writer makes from the same fields.
            handle.seek(info.offset)
            if handle.read(BLOCK) != canonical_header(info):
                raise ArchiveError(f"damaged: the header of {info.name}")
            end = info.offset_data + info.size
            if end + padding(info.size) > file_size:
                raise ArchiveError(f"truncated: {info.name} ends past the end of the file")
            if not _zeros(handle, end, padding(info.size)):
                raise ArchiveError(f"damaged: non-zero padding after {info.name}")
            found[info.name] = Member(info.name, info.offset_data, info.size)
            expected_offset = end + padding(info.size)
        missing = [name for name in REQUIRED if name not in found]
        if missing:
            # A damaged header ends tarfile's member list early, so it shows up here too.
            raise ArchiveError(f"truncated or damaged: no {', '.join(missing)}")
        tail = file_size - expected_offset
        if tail < 2 * BLOCK:
            raise ArchiveError("truncated: the end-of-archive marker is missing")
        if not _zeros(handle, expected_offset, tail):
            raise ArchiveError("damaged: bytes after the end-of-archive marker")
    return found


def sha256_of(path: Path, member: Member) -> str:
    digest = hashlib.sha256()
    for chunk in chunks_of(path, member):
        digest.update(chunk)
    return digest.hexdigest()


def parse_sums(text: str) -> dict[str, str]:
    sums = {}
    for line in text.splitlines():
        match = re.fullmatch(r"([0-9a-f]{64})  (\S+)", line)
        if not match:
            raise ArchiveError("damaged: SHA256SUMS is not a list of sums")
        sums[match[2]] = match[1]
    return sums


@dataclass(frozen=True)
class Checked:
    """An archive whose structure and every checksum were found right."""

    path: Path
    manifest: dict
    members: dict[str, Member]

    @property
    def project(self) -> str:
        return self.manifest["project"]

    @property
    def created(self) -> datetime.datetime:
        return parse_moment(self.manifest["created"])


def check(path: Path, *, key: bytes | None, checksums: bool = True) -> Checked:
    """Structure, the HMAC of SHA256SUMS with `key` (authentication_key; None: whole, not
    authenticated, for listings), SHA256SUMS against every member (unless `checksums` is
    False: structure and manifest only, which reads a few blocks), and the manifest against
    SHA256SUMS. Raises ArchiveError."""
    found = members(path)
    limits = ((MANIFEST, MANIFEST_MAX_BYTES), (SUMS, SUMS_MAX_BYTES), (AUTH, AUTH_MAX_BYTES))
    for name, limit in limits:
        if name in found and found[name].size > limit:
            raise ArchiveError(f"damaged: {name} is {found[name].size} bytes, over {limit}")
    listing = read_member(path, found[SUMS])
    if key is not None:
        authenticate(path, found, listing, key)
    try:
        sums = parse_sums(listing.decode())
    except UnicodeDecodeError:
        raise ArchiveError("damaged: SHA256SUMS is not text") from None
    listed = set(sums)
    present = set(found) - {SUMS, AUTH}
    if listed != present:
        raise ArchiveError(
            f"damaged: SHA256SUMS lists {', '.join(sorted(listed)) or 'nothing'}, "
            f"the archive holds {', '.join(sorted(present))}"
        )
    names = found if checksums else {MANIFEST: found[MANIFEST]}
    for name in names:
        if name not in (SUMS, AUTH) and sha256_of(path, found[name]) != sums[name]:
            raise ArchiveError(f"damaged: {name} does not match its checksum")
    try:
        manifest = parse_manifest(read_member(path, found[MANIFEST]))
        if (AUTH in found) != (manifest["format"] >= FORMAT_VERSION):
            raise ArchiveError(f"damaged: a format {manifest['format']} archive "
                               f"{'with' if AUTH in found else 'without'} {AUTH}")  # fmt: skip
        for name, entry in manifest["members"].items():
            if found[name].size != entry["size"] or sums[name] != entry["sha256"]:
                raise ArchiveError(f"damaged: {name} differs from the manifest")
    except (ValueError, KeyError, TypeError) as error:
        raise ArchiveError(f"damaged: the manifest is unreadable ({error})") from None
    return Checked(path, manifest, found)


def authenticate(path: Path, found: dict[str, Member], listing: bytes, key: bytes) -> None:
    """AUTH is the HMAC of `listing` (SHA256SUMS) with `key`; compared in constant time."""
    if AUTH not in found:
        raise ArchiveError(f"not authenticated: it has no {AUTH} (a format 1 archive, made "
                           "before archives were authenticated, or altered)")  # fmt: skip
    if not hmac.compare_digest(read_member(path, found[AUTH]), seal(key, listing)):
        raise ArchiveError(f"not authenticated: its {AUTH} was not made with this stack's "
                           "backup key (altered, or made by a stack with another key)")  # fmt: skip


def parse_manifest(data: bytes) -> dict:
    """The manifest, with every field its readers use of the type they expect: a hand-made
    archive is refused here, not by a traceback in the verb that reads it."""
    manifest = json.loads(data)
    if not isinstance(manifest, dict):
        raise ArchiveError("damaged: the manifest is not a JSON object")
    form = manifest.get("format")
    if type(form) is not int or form not in READABLE_FORMATS:
        raise ArchiveError(f"archive format {manifest.get('format')!r} is not one of "
                           f"{', '.join(map(str, READABLE_FORMATS))}")  # fmt: skip
    absent = [key for key in MANIFEST_FIELDS if key not in manifest]
    if absent:
        raise ArchiveError(f"damaged: the manifest has no {', '.join(absent)}")
    wrong = [key for key, kind in MANIFEST_FIELDS.items() if not isinstance(manifest[key], kind)]
    if not wrong:
        inner = {
            "migrations": all(isinstance(name, str) for name in manifest["migrations"]),
            "photos": _counts(manifest["photos"], "files", "bytes"),
            "members": all(_counts(entry, "size") and isinstance(entry.get("sha256"), str)
                           for entry in manifest["members"].values()),
            "secrets": isinstance(manifest.get("secrets", False), bool),
            "created": parse_moment(manifest["created"]) is not None,
        }  # fmt: skip
        wrong = [key for key, right in inner.items() if not right]
    if wrong:
        raise ArchiveError(f"damaged: the manifest's {', '.join(wrong)}: not of the right type")
    return manifest


def parse_moment(text: str) -> datetime.datetime | None:
    """The manifest's `created` (UTC, ending in Z), or None if it is not a moment."""
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _counts(entry: object, *keys: str) -> bool:
    return isinstance(entry, dict) and all(
        type(entry.get(key)) is int and entry[key] >= 0 for key in keys
    )


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- retention ---------------------------------------------------------------------------------


def retained(
    times: list[datetime.datetime], daily: int, weekly: int
) -> dict[datetime.datetime, list[str]]:
    """Which archives to keep, by time (UTC), and why. Only good archives should be passed in:
    damaged ones must not take a good one's place.

    - the newest of each of the `daily` most recent days that have an archive;
    - the newest of each of the `weekly` most recent ISO weeks (Monday to Sunday) that have one;
    - always the newest archive.
    The rules are independent (restic's `forget`), so a week's newest archive may count as a
    daily and a weekly one; days or weeks without an archive do not count.
    """
    newest_first = sorted(set(times), reverse=True)
    reasons: dict[datetime.datetime, list[str]] = {}
    for rule, count, period in (
        ("daily", daily, lambda t: t.date()),
        ("weekly", weekly, lambda t: t.isocalendar()[:2]),
    ):
        seen: list = []
        for when in newest_first:
            key = period(when)
            if key in seen:
                continue
            if len(seen) == count:
                break
            seen.append(key)
            reasons.setdefault(when, []).append(rule)
    if newest_first:
        reasons.setdefault(newest_first[0], []).append("newest")
    return reasons
