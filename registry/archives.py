"""Archives the owner drops in (FLAME2023.zip, BaselFaceModel.tgz): list and open their members.

A member whose name would escape a folder refuses the whole archive: nothing is extracted to disk,
members are streamed straight into the store's staging area.
"""

from __future__ import annotations

import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO

from .errors import IdentifyError


def is_archive(file: Path) -> bool:
    return zipfile.is_zipfile(file) or tarfile.is_tarfile(file)


def members(file: Path) -> list[str]:
    """Regular-file members; refuses the whole archive if any name would escape a folder."""
    if zipfile.is_zipfile(file):
        with zipfile.ZipFile(file) as z:
            infos = [(i.filename, not i.is_dir()) for i in z.infolist()]
    else:
        with tarfile.open(file) as t:
            infos = [(m.name, m.isfile()) for m in t.getmembers()]
    for name, _ in infos:
        p = PurePosixPath(name.replace("\\", "/"))
        if p.is_absolute() or ".." in p.parts:
            raise IdentifyError(
                f"The archive {file} has a member named {name!r} that points outside the "
                "archive (path traversal). reg refuses it whole; nothing was stored or placed. "
                "Download the archive again from its official source."
            )
    return [name for name, is_file in infos if is_file]


@contextmanager
def open_member(file: Path, member: str) -> Iterator[tuple[IO[bytes], int]]:
    """The member's bytes as a stream, with its size (for progress)."""
    if zipfile.is_zipfile(file):
        with zipfile.ZipFile(file) as z, z.open(member) as src:
            yield src, z.getinfo(member).file_size
        return
    with tarfile.open(file) as t:
        info = t.getmember(member)
        src = t.extractfile(info)
        assert src is not None  # members() lists regular files only
        with src:
            yield src, info.size
