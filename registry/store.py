"""The content-addressed object store and placement of objects at pipeline paths.

One path for every way a file enters the registry (add, adopt, archive member; later fetch and
derived outputs): `stage` materialises the bytes inside the store's own temp folder and hashes
them in the same pass, the caller checks and validates the staged file, then `commit` renames
it to `objects/sha256/ab/cdef...` (atomic, fsynced, read-only). Until commit nothing is in the
store; `Staged.discard` removes the temp file, so a refused file leaves no trace.
"""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

from .errors import PlacementConflict, RegError

CHUNK = 8 << 20  # 8 MiB reads keep hashlib (OpenSSL) at memory bandwidth, like `openssl dgst`
FICLONE = 0x40049409  # Linux ioctl: reflink (copy-on-write clone) on btrfs/xfs

Progress = Callable[[int], None]


def _no_progress(_n: int) -> None:
    pass


def hash_stream(
    src: BinaryIO, dst: BinaryIO | None = None, progress: Progress = _no_progress, digest=None
) -> tuple[str, int]:
    """sha256 and size of a stream, optionally copying it to `dst` in the same pass.
    Pass `digest` to continue a running hash (a resumed download)."""
    digest = digest or hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    size = 0
    while n := src.readinto(buf):
        chunk = view[:n]
        digest.update(chunk)
        if dst is not None:
            dst.write(chunk)
        size += n
        progress(n)
    return digest.hexdigest(), size


def hash_file(path: Path, progress: Progress = _no_progress) -> tuple[str, int]:
    """sha256 hex and size of a file. Hashes a read-only memory map of it: no copy from the page
    cache into a buffer, which makes it faster than `openssl dgst` (that copy is ~15% of the work).
    A file truncated by someone else mid-hash ends reg with SIGBUS: no hash, so nothing recorded."""
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return hash_stream(f, progress=progress)
        digest = hashlib.sha256()
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            if hasattr(m, "madvise"):
                m.madvise(mmap.MADV_SEQUENTIAL)
            view = memoryview(m)
            try:
                for start in range(0, len(m), CHUNK):
                    block = view[start : start + CHUNK]
                    digest.update(block)  # releases the GIL
                    progress(len(block))
                    block.release()
            finally:
                view.release()
        return digest.hexdigest(), size


@dataclass
class Staged:
    """Bytes inside the store's temp folder, hashed, not yet committed."""

    path: Path
    sha256: str
    size: int
    method: str  # reflink | hardlink | copy

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class Fingerprint(NamedTuple):
    """A file's stat identity; matching fingerprints mean unchanged without reading the bytes.

    ctime is part of it because mtime can be set back (`touch -d`, `cp -p`, rsync) and ctime
    cannot. A tuple, because status builds 10,000 of them."""

    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int | None = None  # None: recorded before reg kept ctime (migration 0004)

    @classmethod
    def of(cls, path: Path | str) -> Fingerprint:
        return cls.from_stat(os.stat(path))

    @classmethod
    def from_stat(cls, st: os.stat_result) -> Fingerprint:
        return cls(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)

    def matches(self, recorded: Fingerprint) -> bool:
        if recorded.ctime_ns is None:
            return self[:3] == recorded[:3]
        return self == recorded


class ObjectStore:
    def __init__(self, root: Path):
        self.root = root
        self.tmp = root / "tmp"

    def object_path(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256[:2] / sha256[2:]

    def has(self, sha256: str) -> bool:
        return self.object_path(sha256).is_file()

    def _temp_path(self) -> Path:
        import uuid

        self.tmp.mkdir(parents=True, exist_ok=True)
        return self.tmp / f"stage-{uuid.uuid4().hex}"

    def stage_file(self, src: Path, progress: Progress = _no_progress) -> Staged:
        """Materialise `src` in the store: reflink, else hardlink (same file system), else copy;
        hashed in one pass over the bytes either way."""
        tmp = self._temp_path()
        try:
            method = _clone_or_link(src, tmp)
            if method:
                sha, size = hash_file(tmp, progress)
                return Staged(tmp, sha, size, method)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        with open(src, "rb", buffering=0) as fin:
            return self.stage_stream(fin, progress)

    def stage_stream(self, src: BinaryIO, progress: Progress = _no_progress) -> Staged:
        """Copy-and-hash a stream (an archive member, a download) into the store's temp folder."""
        tmp = self._temp_path()
        try:
            with open(tmp, "wb") as fout:
                sha, size = hash_stream(src, fout, progress)
                fout.flush()
                os.fsync(fout.fileno())
            return Staged(tmp, sha, size, "copy")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def commit(self, staged: Staged) -> tuple[Path, bool]:
        """Move a staged file to its content address, read-only. Returns (path, newly stored)."""
        final = self.object_path(staged.sha256)
        if final.is_file():
            staged.discard()
            return final, False
        final.parent.mkdir(parents=True, exist_ok=True)
        if staged.method != "copy":
            _fsync_path(staged.path)
        os.chmod(staged.path, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.replace(staged.path, final)
        _fsync_path(final.parent)
        return final, True


def _clone_or_link(src: Path, dst: Path) -> str | None:
    """Try a reflink, then a hardlink; None when neither works (other file system)."""
    try:
        import fcntl

        with open(src, "rb") as fin, open(dst, "wb") as fout:
            fcntl.ioctl(fout.fileno(), FICLONE, fin.fileno())
        return "reflink"
    except (OSError, ImportError):
        dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
        return "hardlink"
    except OSError:
        return None


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_placement(obj: Path, dest: Path, replace: bool) -> None:
    """Refuse early (before anything is stored) when a different file sits at `dest`."""
    if not os.path.lexists(dest) or replace or same_file(obj, dest):
        return
    raise PlacementConflict(
        f"A different file already sits at {dest}. Move it away, or run the same `reg add` "
        "with --replace (the file there is kept in the store first, so nothing is lost)."
    )


def place(obj: Path, dest: Path, mode: str) -> str:
    """Put the store object at the pipeline path atomically (temp name + rename). Returns the mode used."""
    if same_file(obj, dest) and (mode != "symlink" or dest.is_symlink()):
        return mode
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.reg-tmp")
    tmp.unlink(missing_ok=True)
    try:
        if mode == "symlink":
            os.symlink(obj, tmp)
        elif mode == "hardlink":
            try:
                os.link(obj, tmp)
            except OSError as exc:
                if exc.errno == errno.EXDEV:
                    raise RegError(
                        f"Cannot hardlink {dest} to the store at {obj}: they are on different file "
                        "systems. Use --link symlink (the default) or --link copy."
                    ) from None
                raise
        elif mode == "copy":
            shutil.copyfile(obj, tmp)
        else:
            raise ValueError(mode)
        os.replace(tmp, dest)
    finally:
        if os.path.lexists(tmp):
            tmp.unlink()
    return mode
