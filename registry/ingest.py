"""The one way bytes become a registered asset, for `reg add`, `reg fetch` and `reg derive`.

Order matters for "lose nothing": stage (hash in one pass) -> check size/sha256 -> validate ->
check the pipeline path -> commit to the store -> place -> record. Anything refused before the
commit leaves no object, no placement and no row; a failure after it removes a new object.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from . import archives, validators
from .catalog import Asset
from .errors import IntegrityError, RegError
from .store import Fingerprint, Staged, check_placement, hash_file, place, same_file


class ProgressBar(Protocol):
    def update(self, n: int) -> object: ...


class Progress(Protocol):
    """Long work reports bytes through this; the CLI passes tqdm bars, tests and --json `null_progress`."""

    def __call__(self, total: int, desc: str) -> AbstractContextManager[ProgressBar]: ...


class _NullBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        pass


def null_progress(total: int, desc: str) -> _NullBar:
    return _NullBar()


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


def store_and_place(
    reg,
    plans: list[tuple[Candidate, Staged]],
    origin: Path | None,
    sha256: str | None,
    replace: bool,
    link: str,
    progress: Progress,
    registered: dict | None = None,
) -> list[AddResult]:
    """The one way a staged file becomes a registered asset (add, adopt, archive member, fetch):
    integrity, validation and placement checks for all first, then commit, place and record each.
    `origin` is the user's own file, which may already be the pipeline path (adoption)."""
    if registered is None:
        registered = reg.state.asset_records()
    checked = []
    for cand, staged in plans:
        _check_integrity(cand, staged, sha256, replace, registered.get(cand.asset.key))
        checked.append((cand, staged, validators.check(staged.path, cand.asset, cand.source)))
    for cand, staged, _ in checked:
        _check_checkout(reg, cand.asset)
        dest = reg.placement_path(cand.asset)
        if not (origin and same_file(origin, dest)) and not _holds(
            dest, reg.store.object_path(staged.sha256), staged.sha256
        ):
            check_placement(staged.path, dest, replace)
    return [
        _commit_and_place(reg, origin, cand, staged, summary, link, replace, progress, registered.get(cand.asset.key))
        for cand, staged, summary in checked
    ]


def _check_checkout(reg, asset: Asset) -> None:
    """Placing into a pipeline checkout that is not there would create its folder, and the user's
    `git clone` then fails ("destination path already exists"): refuse before anything is stored."""
    if not asset.pipeline or os.path.isabs(os.path.expanduser(asset.path)):
        return
    root = reg.pipeline_root(asset.pipeline)
    if root.is_dir():
        return
    p = reg.catalog.pipelines[asset.pipeline]
    clone = f"`git clone {p.repo} {root}`" if p.repo else f"clone {p.name} into {root}"
    raise RegError(
        f"The {p.name} checkout {root} does not exist, so {asset.key} has nowhere to go (reg does not create "
        f"the folder: `git clone` would then refuse it). Clone it first: {clone}, or point reg at your "
        f"checkout with `reg config pipelines.{p.key}.root PATH`, then run this again. Nothing was stored or placed.",
        key=asset.key,
        path=root,
    )


def stage(reg, file: Path, member: str | None, progress: Progress) -> Staged:
    """Copy-and-hash a file (or one archive member) into the store's staging area."""
    if member is None:
        with progress(file.stat().st_size, file.name) as bar:
            return reg.store.stage_file(file, bar.update)
    with archives.open_member(file, member) as (src, size), progress(size, member) as bar:
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
    progress: Progress,
    previous,
) -> AddResult:
    asset = cand.asset
    dest = reg.placement_path(asset)
    adopting = origin is not None and cand.member is None and same_file(origin, dest)
    if replace and os.path.lexists(dest) and not adopting:
        _keep_displaced(reg, asset, dest, staged.sha256, progress)
    sha, size = staged.sha256, staged.size
    obj, new = reg.store.commit(staged)
    event = ("re-added" if previous.sha256 == sha else "replaced") if previous else ("adopted" if adopting else "added")
    detail = f"from {cand.source}; {summary}"
    if event == "replaced":
        detail += f"; previous {previous.sha256} kept in the store"
    with reg.store.placing(dest):
        try:
            # the file at the path is already the one (a hand copy, or reg's own placement re-added)
            mode = (previous.link_mode if previous else "adopted") if adopting else place(obj, dest, link)
            fp = Fingerprint.of(dest)
        except BaseException:
            if new:
                obj.unlink(missing_ok=True)
            raise
        reg.state.record_placed(asset.key, sha, size, str(dest), mode, fp, event, detail)
    return AddResult(asset.key, sha, size, str(dest), mode, new, summary, cand.source)


def _keep_displaced(reg, asset: Asset, dest: Path, new_sha: str, progress: Progress) -> None:
    """--replace never destroys: an unregistered file at the pipeline path goes to the store first."""
    if dest.is_symlink() and Path(os.readlink(dest)).is_relative_to(reg.store.root):
        return  # our own placement: its object is already in the store
    if not dest.is_file():
        return
    staged = stage(reg, dest, None, progress)
    if staged.sha256 == new_sha:
        staged.discard()
        return
    obj, _ = reg.store.commit(staged)
    reg.state.record_stored(
        staged.sha256, staged.size, asset.key, f"file found at {dest} before --replace; kept as {obj}"
    )
