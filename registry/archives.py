"""Archives the owner drops in (FLAME2023.zip, BaselFaceModel.tgz): list and open their members.

A member whose name would escape a folder refuses the whole archive: nothing is extracted to disk,
members are streamed straight into the store's staging area. So is an archive that would inflate
past MAX_INFLATED or at an absurd ratio (a zip bomb), judged from the headers before anything is
decompressed, and a damaged one (a bad CRC, a local header that names a different file than the
central directory) is one clear error instead of zipfile's traceback.
"""

from __future__ import annotations

import gzip
import lzma
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO

from .errors import IdentifyError, ValidationError

MAX_INFLATED = 16 << 30  # every archive a pipeline needs inflates to well under 16 GiB
MAX_RATIO = 100  # real model archives compress 1-5x; deflate bombs reach 1000x
RATIO_FLOOR = 16 << 20  # below this, any ratio is harmless (a small file of zeros)
# What reading a damaged archive raises besides BadZipFile (a broken deflate, gzip or xz stream).
CORRUPT = (zipfile.BadZipFile, tarfile.TarError, zlib.error, gzip.BadGzipFile, lzma.LZMAError, EOFError)


def inflation_problem(sizes: list[tuple[str, int, int]]) -> str | None:
    """`sizes`: (name, inflated, compressed) per member. A sentence fragment if they look like a bomb."""
    total = 0
    for name, inflated, compressed in sizes:
        total += inflated
        if inflated > RATIO_FLOOR and inflated > MAX_RATIO * max(compressed, 1):
            return (
                f"has a member {name!r} that inflates {inflated // max(compressed, 1):,}-fold "
                f"({compressed:,} to {inflated:,} bytes; real files compress at most a few times): a decompression bomb"
            )
        if total > MAX_INFLATED:
            return f"would inflate past {MAX_INFLATED >> 30} GiB, more than any asset a pipeline needs"
    return None


def _refuse(file: Path, what: str) -> ValidationError:
    return ValidationError(
        f"The archive {file} {what}. reg refuses it whole; nothing was stored or placed. "
        "Download the archive again from its official source."
    )


def is_archive(file: Path) -> bool:
    return zipfile.is_zipfile(file) or tarfile.is_tarfile(file)


def members(file: Path) -> list[str]:
    """Regular-file members; refuses the whole archive if any name would escape a folder, or if it
    would inflate like a bomb (zip: from the central directory; tar: header by header, before the
    stream is decompressed past the member)."""
    try:
        if zipfile.is_zipfile(file):
            with zipfile.ZipFile(file) as z:
                infos = [(i.filename, not i.is_dir()) for i in z.infolist()]
                problem = inflation_problem([(i.filename, i.file_size, i.compress_size) for i in z.infolist()])
        else:
            infos, problem = _tar_members(file)
    except CORRUPT as exc:
        raise _refuse(file, f"is damaged ({type(exc).__name__}: {exc})") from None
    if problem:
        raise _refuse(file, problem)
    for name, _ in infos:
        p = PurePosixPath(name.replace("\\", "/"))
        if p.is_absolute() or ".." in p.parts:
            raise IdentifyError(
                f"The archive {file} has a member named {name!r} that points outside the "
                "archive (path traversal). reg refuses it whole; nothing was stored or placed. "
                "Download the archive again from its official source."
            )
    return [name for name, is_file in infos if is_file]


def _tar_members(file: Path) -> tuple[list[tuple[str, bool]], str | None]:
    size = file.stat().st_size
    infos = []
    with tarfile.open(file) as t:
        for m in t:  # the next header is read (decompressing this member) only after this check
            infos.append((m.name, m.isfile()))
            end = m.offset_data + m.size
            problem = inflation_problem([(m.name, end, size)])  # the archive so far vs. its size
            if problem:
                return infos, problem
    return infos, None


def stream_members(file: Path, wanted: set[str]) -> Iterator[tuple[str, IO[bytes], int]]:
    """(name, stream, size) for each wanted member, in one pass over the archive: a tar of a
    thousand members is read once, not once per member. Each stream must be consumed before the
    next is asked for. Reads stop at the size the headers declare, which `members` has bounded."""
    current = "?"
    try:
        if zipfile.is_zipfile(file):
            with zipfile.ZipFile(file) as z:
                for info in z.infolist():
                    if info.filename not in wanted:
                        continue
                    current = info.filename
                    problem = inflation_problem([(current, info.file_size, info.compress_size)])
                    if problem:
                        raise _refuse(file, problem)
                    try:
                        src = z.open(info)
                    except (RuntimeError, NotImplementedError) as exc:  # encrypted, unknown compression
                        raise _refuse(file, f"has a member {current!r} reg cannot read ({exc})") from None
                    with src:
                        yield current, src, info.file_size
            return
        with tarfile.open(file) as t:
            for m in t:
                if m.name not in wanted or not m.isfile():
                    continue
                current = m.name
                stream = t.extractfile(m)
                assert stream is not None  # a regular file
                with stream:
                    yield current, stream, m.size
    except CORRUPT as exc:
        raise _refuse(file, f"is damaged: reading {current!r} failed ({type(exc).__name__}: {exc})") from None


@contextmanager
def refusing_damage(file: Path, member: str) -> Iterator[None]:
    """Around reading a member's stream: a damage found mid-read (a bad CRC) is one clear error."""
    try:
        yield
    except CORRUPT as exc:
        raise _refuse(file, f"is damaged: reading {member!r} failed ({type(exc).__name__}: {exc})") from None


@contextmanager
def open_member(file: Path, member: str) -> Iterator[tuple[IO[bytes], int]]:
    """One member's bytes as a stream, with its size (for progress); KeyError when there is none."""
    for _, src, size in stream_members(file, {member}):
        with refusing_damage(file, member):
            yield src, size
        return
    raise KeyError(member)  # as zipfile and tarfile say it: the caller knows what was asked for
