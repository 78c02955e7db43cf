"""The photos (the media volume) for ./ops backup and restore: `media_volume.py COMMAND`.

  pack       a tar of every photo to stdout (./ops backup stores it as the archive's media.tar)
  count      `N files, B bytes`
  inventory  one line per photo, `sha256  size  name`, and a last line `N files, B bytes`
  stage TAR  a tar file (an archive's media.tar, which tools/ops mounts read-only) into a new
             folder of the volume, checked: regular files and folders only, no name leaving the
             folder, none of this script's own names, no sparse file (each file's bytes are in
             the tar, so what is staged is never larger than the tar)
  swap       the staged photos become the volume's, the current ones are set aside
  reset      undoes swap if it ran (the photos set aside are the volume's again) and removes
             anything staged: the volume as it was before the restore; then `count`
  finish     removes what swap set aside and anything staged (the restore is done)

tools/ops runs it in a one-off container of the web image (the media volume at /srv/media, as
the app user who owns the photos). The volume's root is a mount point and cannot be renamed, so
a restore swaps its top-level entries (the app writes one: cats/): each is one rename, done
while the site is out of rotation (scripts/maintenance.py), and never mixes old and new files
inside a folder. Exit 1 with one line on failure.
"""

import argparse
import hashlib
import os
import shutil
import sys
import tarfile
from pathlib import Path

MEDIA_DIR = Path("/srv/media")
# Folders of an unfinished restore: never packed, never served (nginx refuses no dot-folder,
# but the site is in maintenance while they exist).
STAGED = ".restore-incoming"
SET_ASIDE = ".restore-previous"
# Written once every current entry is set aside, before any staged one moves in: from then on
# what the volume's root holds came from the restore.
SWAPPED = ".restore-swapped"
OURS = (STAGED, SET_ASIDE, SWAPPED)


def entries(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.name not in OURS)


def photos(media: Path) -> list[Path]:
    return sorted(
        path
        for top in entries(media)
        for path in ([top] if top.is_file() else top.rglob("*"))
        if path.is_file() and not path.is_symlink()
    )


def pack(media: Path) -> None:
    with tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path in photos(media):
            info = tar.gettarinfo(path, arcname=path.relative_to(media).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with path.open("rb") as handle:
                tar.addfile(info, handle)


def inventory(media: Path) -> None:
    total = 0
    found = photos(media)
    for path in found:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        size = path.stat().st_size
        total += size
        print(f"{digest.hexdigest()}  {size}  {path.relative_to(media).as_posix()}")
    print(f"{len(found)} files, {total} bytes")


def count(media: Path) -> None:
    found = photos(media)
    print(f"{len(found)} files, {sum(path.stat().st_size for path in found)} bytes")


def only_photos(member: tarfile.TarInfo, destination: str) -> tarfile.TarInfo:
    """tarfile's `data` filter (no absolute names, no `..`, no device files, sane modes), and
    nothing but regular files and folders: a link in an archive is refused, not followed. A
    sparse file is refused (a few bytes of tar would become as large a file as its header
    says), and so is a name of an unfinished restore's (swap would leave it behind)."""
    if not (member.isfile() or member.isdir()):
        raise tarfile.FilterError(f"{member.name}: not a regular file or folder")
    if member.issparse():
        raise tarfile.FilterError(f"{member.name}: a sparse file")
    parts = Path(member.name.lstrip("/")).parts
    if parts and parts[0] in OURS:
        raise tarfile.FilterError(f"{member.name}: a name restores keep for themselves")
    member = tarfile.data_filter(member, destination)
    return member.replace(mode=0o755 if member.isdir() else 0o644, deep=False)


def stage(media: Path, source: Path) -> None:
    staged = media / STAGED
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir()
    try:
        with tarfile.open(source, mode="r|") as tar:
            # Safe: only_photos refuses links, devices, absolute names and `..`.
            tar.extractall(staged, filter=only_photos)  # noqa: S202
    except (tarfile.TarError, OSError) as error:
        shutil.rmtree(staged, ignore_errors=True)
        sys.exit(f"error: the archive's photos cannot be unpacked: {error}")
    files = photos(staged)
    print(f"{len(files)} files, {sum(path.stat().st_size for path in files)} bytes staged")


def move_all(source: Path, target: Path) -> None:
    target.mkdir(exist_ok=True)
    for path in entries(source):
        os.replace(path, target / path.name)


def swap(media: Path) -> None:
    staged, aside = media / STAGED, media / SET_ASIDE
    if not staged.is_dir():
        sys.exit("error: nothing staged to swap in")
    if aside.exists():
        sys.exit(f"error: {aside} exists: a previous restore did not finish; run it again")
    move_all(media, aside)
    (media / SWAPPED).touch()
    move_all(staged, media)
    staged.rmdir()
    print("photos swapped")


def reset(media: Path) -> None:
    aside = media / SET_ASIDE
    if (media / SWAPPED).exists():
        # The restored photos go back to the staging folder, removed below. Without the
        # marker, a swap stopped while setting the current ones aside: what is left is theirs.
        move_all(media, media / STAGED)
    if aside.is_dir():
        move_all(aside, media)
        aside.rmdir()
    shutil.rmtree(media / STAGED, ignore_errors=True)
    (media / SWAPPED).unlink(missing_ok=True)
    count(media)


def finish(media: Path) -> None:
    for name in (STAGED, SET_ASIDE):
        shutil.rmtree(media / name, ignore_errors=True)
    (media / SWAPPED).unlink(missing_ok=True)
    print("photos set aside removed")


COMMANDS = {
    "pack": pack, "count": count, "inventory": inventory, "stage": stage, "swap": swap,
    "reset": reset, "finish": finish,
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=COMMANDS)
    parser.add_argument("tar", nargs="?", type=Path, help="stage: the photos' tar file")
    args = parser.parse_args()
    staging = args.command == "stage"
    if staging != (args.tar is not None):
        parser.error("stage takes TAR; the other commands take nothing")
    os.umask(0o022)
    if not MEDIA_DIR.is_dir():
        sys.exit(f"error: {MEDIA_DIR} does not exist; mount the media volume there")
    try:
        if staging:
            stage(MEDIA_DIR, args.tar)
        else:
            COMMANDS[args.command](MEDIA_DIR)
    except OSError as error:
        sys.exit(f"error: {args.command}: {error}")


if __name__ == "__main__":
    main()
