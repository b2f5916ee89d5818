"""`reg add`: identify a dropped-in file, verify it, store it, place it where the pipeline looks.

Order matters for "lose nothing": stage (hash in one pass) -> check size/sha256 -> validate ->
check the pipeline path -> commit to the store -> place -> record. Anything refused before the
commit leaves no object, no placement and no row; a failure after it removes a new object.
"""

from __future__ import annotations

import difflib
import os
import sys
import tarfile
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import validators
from .catalog import Asset
from .errors import IdentifyError, IntegrityError, RegError
from .store import Fingerprint, Staged, check_placement, hash_file, place, same_file


@dataclass
class AddResult:
    key: str
    sha256: str
    size: int
    path: str
    link_mode: str
    newly_stored: bool
    summary: str
    source: str  # the file, or archive!member


@dataclass
class Candidate:
    """A catalogued asset that some incoming bytes claim to be."""

    asset: Asset
    source: str  # for messages: the file, archive!member, or URL
    member: str | None = None  # archive member name, None for the file itself


class _NullBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        pass


ProgressFactory = Callable[[int, str], object]


def null_progress(total: int, desc: str):
    return _NullBar()


def add_file(
    reg,
    file: Path,
    as_key: str | None = None,
    sha256: str | None = None,
    replace: bool = False,
    link: str = "symlink",
    progress: ProgressFactory = null_progress,
) -> list[AddResult]:
    file = Path(file).expanduser()
    if not file.is_file():
        raise RegError(f"{file} does not exist or is not a regular file. Pass the path of the file you downloaded.")
    with ExitStack() as cleanup:
        # Hash the whole file in a thread right away (hashlib releases the GIL), overlapping the
        # ~0.3 s of catalog, SQLAlchemy and database start-up below. If the file turns out to be an
        # archive to extract from, this staged copy is simply discarded.
        pool = ThreadPoolExecutor(1)
        cleanup.callback(pool.shutdown)
        # Hand the GIL over sooner (default 5 ms) so the start-up work here does not stall the
        # hashing thread between its blocks.
        cleanup.callback(sys.setswitchinterval, sys.getswitchinterval())
        sys.setswitchinterval(0.0002)
        whole = pool.submit(_stage, reg, file, None, progress)
        cleanup.callback(lambda: whole.exception() or whole.result().discard())
        catalog = reg.catalog
        if as_key:
            catalog.asset(as_key)  # unknown key -> clear error
        adopted = _adoption_target(reg, file)
        candidates = [Candidate(adopted, str(file))] if adopted and not as_key else _identify(reg, file, as_key)
        from . import records  # SQLAlchemy's import and the query also overlap the hash

        registered = records.asset_records(reg)
        staged_by_source: dict[str | None, Staged] = {}
        plans = []
        for cand in candidates if candidates else [None]:
            member = cand.member if cand else None
            if member not in staged_by_source:
                staged_by_source[member] = whole.result() if member is None else _stage(reg, file, member, progress)
                cleanup.callback(staged_by_source[member].discard)
            staged = staged_by_source[member]
            if cand is None:  # unknown by name: try the hash
                cand = _identify_by_hash(reg, file, staged.sha256, registered)
            plans.append((cand, staged))
        return store_and_place(reg, plans, file, sha256, replace, link, progress, registered)


def store_and_place(
    reg,
    plans: list[tuple[Candidate, Staged]],
    origin: Path | None,
    sha256: str | None,
    replace: bool,
    link: str,
    progress: ProgressFactory,
    registered: dict | None = None,
) -> list[AddResult]:
    """The one way a staged file becomes a registered asset (add, adopt, archive member, fetch):
    integrity, validation and placement checks for all first, then commit, place and record each.
    `origin` is the user's own file, which may already be the pipeline path (adoption)."""
    if registered is None:
        from . import records

        registered = records.asset_records(reg)
    checked = []
    for cand, staged in plans:
        _check_integrity(cand, staged, sha256, replace, registered.get(cand.asset.key))
        checked.append((cand, staged, validators.check(staged.path, cand.asset, cand.source)))
    for cand, staged, _ in checked:
        dest = reg.placement_path(cand.asset)
        if not (origin and same_file(origin, dest)) and not _holds(
            dest, reg.store.object_path(staged.sha256), staged.sha256
        ):
            check_placement(staged.path, dest, replace)
    return [
        _commit_and_place(reg, origin, cand, staged, summary, link, replace, progress, registered.get(cand.asset.key))
        for cand, staged, summary in checked
    ]


def _adoption_target(reg, file: Path) -> Asset | None:
    """The asset whose pipeline path *is* this file (the owner copied it in place by hand)."""
    here = file.absolute()
    for asset in reg.catalog.assets.values():
        if reg.placement_path(asset).absolute() == here:
            return asset
    return None


def _identify(reg, file: Path, as_key: str | None) -> list[Candidate]:
    """By --as, else by file name, else as an archive whose members are catalogued. [] = try the hash."""
    catalog = reg.catalog
    if as_key:
        asset = catalog.asset(as_key)
        if file.name not in asset.filenames and _is_archive(file):
            members = [m for m in _members(file) if PurePosixPath(m).name in asset.filenames]
            if members:
                return [Candidate(asset, f"{file}!{members[0]}", members[0])]
        return [Candidate(asset, str(file))]
    by_name = [a for a in catalog.assets.values() if file.name in a.filenames]
    if len(by_name) == 1:
        return [Candidate(by_name[0], str(file))]
    if len(by_name) > 1:
        keys = ", ".join(a.key for a in by_name)
        raise IdentifyError(
            f"{file} could be any of: {keys}. Say which with --as KEY, e.g. `reg add {file} --as {by_name[0].key}`."
        )
    if _is_archive(file):
        found = []
        for member in _members(file):
            for asset in catalog.assets.values():
                if PurePosixPath(member).name in asset.filenames:
                    found.append(Candidate(asset, f"{file}!{member}", member))
        if not found:
            raise IdentifyError(
                f"The archive {file} holds no catalogued file (looked for names such as "
                f"{', '.join(_nearest(reg, file.name))}). Extract the file you need and "
                "`reg add` it with --as KEY."
            )
        return found
    return []


def _identify_by_hash(reg, file: Path, sha: str, registered: dict) -> Candidate:
    catalog = reg.catalog
    pinned = {r.sha256: k for k, r in registered.items()}
    for asset in catalog.assets.values():
        if asset.sha256 == sha or pinned.get(sha) == asset.key:
            return Candidate(asset, str(file))
    raise IdentifyError(
        f"{file} matches no catalogued file by name or sha256. Nearest catalogued names: "
        f"{', '.join(_nearest(reg, file.name))}. If it is one of them, run "
        f"`reg add {file} --as KEY` (`reg ls` lists keys); if it is new, declare it in a "
        "manifest in the registry's manifests/ folder."
    )


def _nearest(reg, name: str) -> list[str]:
    names = sorted({n for a in reg.catalog.assets.values() for n in a.filenames})
    return difflib.get_close_matches(name, names, n=5, cutoff=0.0)[:5]


def _is_archive(file: Path) -> bool:
    return zipfile.is_zipfile(file) or tarfile.is_tarfile(file)


def _members(file: Path) -> list[str]:
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


def _stage(reg, file: Path, member: str | None, progress: ProgressFactory) -> Staged:
    if member is None:
        with progress(file.stat().st_size, file.name) as bar:
            return reg.store.stage_file(file, bar.update)
    if zipfile.is_zipfile(file):
        with zipfile.ZipFile(file) as z, z.open(member) as src, progress(z.getinfo(member).file_size, member) as bar:
            return reg.store.stage_stream(src, bar.update)
    with tarfile.open(file) as t:
        info = t.getmember(member)
        with t.extractfile(info) as src, progress(info.size, member) as bar:
            return reg.store.stage_stream(src, bar.update)


def _check_integrity(cand: Candidate, staged: Staged, expected: str | None, replace: bool, rec) -> None:
    asset = cand.asset
    if asset.size is not None and staged.size != asset.size:
        raise IntegrityError(
            f"{cand.source} is {staged.size} bytes but the catalog says {asset.name} ('{asset.key}') "
            f"is {asset.size} bytes: a truncated or different download. Nothing was stored or "
            "placed; download it again."
        )
    for want, who in ((asset.sha256, "the catalog"), (expected and expected.lower(), "--sha256")):
        if want and staged.sha256 != want:
            raise IntegrityError(
                f"{cand.source} has sha256 {staged.sha256} but {who} expects {want} for "
                f"'{asset.key}'. Nothing was stored or placed; download it again from its source."
            )
    if rec and rec.sha256 != staged.sha256 and not replace:
        raise IntegrityError(
            f"'{asset.key}' is already registered with a different file (sha256 {rec.sha256}); "
            f"{cand.source} has {staged.sha256}. Re-run with --replace to switch to the new file "
            "(the old one stays in the store)."
        )


def _holds(dest: Path, obj: Path, sha: str) -> bool:
    """True when `dest` already has exactly this content (our placement, or an identical copy)."""
    if not os.path.lexists(dest):
        return False
    if same_file(dest, obj):
        return True
    try:
        return dest.is_file() and dest.stat().st_size == obj.stat().st_size and hash_file(dest)[0] == sha
    except OSError:
        return False


def _commit_and_place(
    reg,
    origin: Path | None,
    cand: Candidate,
    staged: Staged,
    summary: str,
    link: str,
    replace: bool,
    progress: ProgressFactory,
    previous,
) -> AddResult:
    from . import records

    asset = cand.asset
    dest = reg.placement_path(asset)
    adopting = origin is not None and cand.member is None and same_file(origin, dest)
    if replace and os.path.lexists(dest) and not adopting:
        _keep_displaced(reg, asset, dest, staged.sha256, progress)
    sha, size = staged.sha256, staged.size
    obj, new = reg.store.commit(staged)
    try:
        mode = "adopted" if adopting else place(obj, dest, link)
        fp = Fingerprint.of(dest)
    except BaseException:
        if new:
            obj.unlink(missing_ok=True)
        raise
    event = "replaced" if previous and previous.sha256 != sha else ("adopted" if adopting else "added")
    detail = f"from {cand.source}; {summary}"
    if event == "replaced":
        detail += f"; previous {previous.sha256} kept in the store"
    records.record_placed(reg, asset.key, sha, size, str(dest), mode, fp, event, detail)
    return AddResult(asset.key, sha, size, str(dest), mode, new, summary, cand.source)


def _keep_displaced(reg, asset: Asset, dest: Path, new_sha: str, progress: ProgressFactory) -> None:
    """--replace never destroys: an unregistered file at the pipeline path goes to the store first."""
    from . import records

    if dest.is_symlink() and Path(os.readlink(dest)).is_relative_to(reg.store.root):
        return  # our own placement: its object is already in the store
    if not dest.is_file():
        return
    staged = _stage(reg, dest, None, progress)
    if staged.sha256 == new_sha:
        staged.discard()
        return
    obj, _ = reg.store.commit(staged)
    records.record_stored(
        reg, staged.sha256, staged.size, asset.key, f"file found at {dest} before --replace; kept as {obj}"
    )
