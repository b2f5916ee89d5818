"""The content-addressed object store and placement of objects at pipeline paths.

One path for every way a file enters the registry (add, adopt, archive member, fetch, derived
outputs): `stage` materialises the bytes inside the store's own temp folder and hashes them in
the same pass, the caller checks and validates the staged file, then `commit` renames it to
`objects/sha256/ab/cdef...` (atomic, fsynced, read-only). Until commit nothing is in the store;
`Staged.discard` removes the temp file, so a refused file leaves no trace.

An object never shares its inode with a file outside reg's control: staging reflinks (a
copy-on-write clone, private to the store) or copies, and hashes the bytes it stored, never the
user's file (which may still be changing). A hardlinked stage would make the owner's editor, or a
file still being written, change a "verified" object behind reg's back (DVC issue 9641).
Placement copies (reflink where the file system can) by default for the same reason; `symlink`
and `hardlink` placements save disk and are on request, and a write through them (CAP4D's
`fix_flame_pickle.py` run as root) is caught by the ctime fingerprint and `reg verify --store`.
"""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NamedTuple

from .errors import PlacementConflict, RegError

CHUNK = 8 << 20  # 8 MiB reads keep hashlib (OpenSSL) at memory bandwidth, like `openssl dgst`
FICLONE = 0x40049409  # Linux ioctl: reflink (copy-on-write clone) on btrfs/xfs

Progress = Callable[[int], object]


def _no_progress(_n: int) -> None:
    pass


def hash_stream(
    src: IO[bytes], dst: IO[bytes] | None = None, progress: Progress = _no_progress, digest=None
) -> tuple[str, int]:
    """sha256 and size of a stream, optionally copying it to `dst` in the same pass.
    Pass `digest` to continue a running hash (a resumed download)."""
    digest = digest or hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    size = 0
    while n := src.readinto(buf):  # type: ignore[attr-defined]  # every stream reg reads has it
        chunk = view[:n]
        digest.update(chunk)
        if dst is not None:
            dst.write(chunk)
        size += n
        progress(n)
    return digest.hexdigest(), size


WINDOW = 64 << 20  # bytes mapped at a time: bounds RSS whatever the file size (a multiple of the page size)


def hash_file(path: Path, progress: Progress = _no_progress) -> tuple[str, int]:
    """sha256 hex and size of a file. Hashes read-only memory maps of it: no copy from the page
    cache into a buffer, which makes it as fast as `openssl dgst`. The map slides over the file a
    window at a time, so resident memory stays bounded (a whole-file map of a 20 GiB checkpoint
    counts 20 GiB of RSS). A file truncated by someone else mid-hash ends reg with SIGBUS: no
    hash, so nothing recorded."""
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return hash_stream(f, progress=progress)
        digest = hashlib.sha256()
        for offset in range(0, size, WINDOW):
            length = min(WINDOW, size - offset)
            with mmap.mmap(f.fileno(), length, access=mmap.ACCESS_READ, offset=offset) as m:
                if hasattr(m, "madvise"):
                    m.madvise(mmap.MADV_SEQUENTIAL)
                view = memoryview(m)
                try:
                    for start in range(0, length, CHUNK):
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
    method: str  # reflink | copy

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

    @staticmethod
    def _intact(final: Path, staged: Staged) -> bool:
        """Can the object already at this address be trusted by its name? Not when its inode is
        shared (a hardlink placement someone may have edited) or its size is wrong: rehash it."""
        st = final.stat()
        if st.st_size != staged.size:
            return False
        return st.st_nlink == 1 or hash_file(final)[0] == staged.sha256

    def _temp_path(self) -> Path:
        import uuid

        self.tmp.mkdir(parents=True, exist_ok=True)
        return self.tmp / f"stage-{os.getpid()}-{uuid.uuid4().hex}"  # the pid lets gc tell a crashed stage

    @contextmanager
    def placing(self, dest: Path) -> Iterator[None]:
        """Hold while putting a file at `dest` and recording its fingerprint: two processes placing
        the same path must not record one's fingerprint for the other's file."""
        import fcntl

        locks = self.root / "locks"  # beside tmp/, whose files are all scratch
        locks.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(str(dest).encode()).hexdigest()[:24]
        with open(locks / f"place-{name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def stale_scratch(self) -> list[Path]:
        """Stages and derive folders in tmp/ whose process is gone (killed mid-add): safe to remove.
        Partial downloads (`fetch-*.part`) are not scratch: the next `reg fetch` resumes them."""
        out = []
        for p in self.tmp.glob("*-*-*") if self.tmp.is_dir() else []:
            kind, _, rest = p.name.partition("-")
            pid = rest.split("-", 1)[0]
            if kind in ("stage", "derive") and pid.isdigit() and not _process_alive(int(pid)):
                out.append(p)
        return out

    def stage_file(self, src: Path, progress: Progress = _no_progress) -> Staged:
        """Materialise `src` in the store, private to it: a reflink, else a copy; either way the
        hash is of the bytes the store holds."""
        tmp = self._temp_path()
        try:
            if _reflink(src, tmp):
                sha, size = hash_file(tmp, progress)
                return Staged(tmp, sha, size, "reflink")
            if _kernel_copy(src, tmp):  # no trip through Python's buffers; then hash the copy itself
                sha, size = hash_file(tmp, progress)
                _fsync_path(tmp)
                return Staged(tmp, sha, size, "copy")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        with open(src, "rb", buffering=0) as fin:
            return self.stage_stream(fin, progress)

    def stage_stream(self, src: IO[bytes], progress: Progress = _no_progress) -> Staged:
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
        if final.is_file() and self._intact(final, staged):
            staged.discard()
            return final, False
        final.parent.mkdir(parents=True, exist_ok=True)
        if staged.method != "copy":
            _fsync_path(staged.path)
        os.chmod(staged.path, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.replace(staged.path, final)
        _fsync_path(final.parent)
        return final, True


def _reflink(src: Path, dst: Path) -> bool:
    """A copy-on-write clone (btrfs, xfs); False where the file system cannot (ext4, across mounts)."""
    try:
        import fcntl

        with open(src, "rb") as fin, open(dst, "wb") as fout:
            fcntl.ioctl(fout.fileno(), FICLONE, fin.fileno())
        return True
    except (OSError, ImportError):
        dst.unlink(missing_ok=True)
        return False


def _kernel_copy(src: Path, dst: Path) -> bool:
    """Copy inside the kernel (copy_file_range); False where it is unavailable, to fall back."""
    if not hasattr(os, "copy_file_range"):
        return False
    try:
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            remaining = os.fstat(fin.fileno()).st_size
            while remaining > 0:
                n = os.copy_file_range(fin.fileno(), fout.fileno(), min(remaining, 1 << 30))
                if n == 0:
                    break
                remaining -= n
        return True
    except OSError:
        dst.unlink(missing_ok=True)
        return False


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
    # a name of this process's own: two `reg add`s placing the same file must not share a temp
    tmp = dest.with_name(f".{dest.name}.reg-{os.getpid()}-{os.urandom(4).hex()}")
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
            if not _reflink(obj, tmp):
                shutil.copyfile(obj, tmp)
        else:
            raise ValueError(mode)
        os.replace(tmp, dest)
    finally:
        if os.path.lexists(tmp):
            tmp.unlink()
    return mode
