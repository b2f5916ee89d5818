"""`reg add`: identify a dropped-in file, then hand it to `ingest` to verify, store and place."""

from __future__ import annotations

import difflib
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path, PurePosixPath

from . import archives
from .catalog import Asset
from .errors import IdentifyError, RegError
from .ingest import AddResult, Candidate, Progress, null_progress, stage, store_and_place
from .store import Staged


def add_file(
    reg,
    file: Path,
    as_key: str | None = None,
    sha256: str | None = None,
    replace: bool = False,
    link: str = "copy",
    progress: Progress = null_progress,
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
        whole = pool.submit(stage, reg, file, None, progress)
        cleanup.callback(lambda: None if whole.exception() else whole.result().discard())
        catalog = reg.catalog
        if as_key:
            catalog.asset(as_key)  # unknown key -> clear error
        adopted = _adoption_target(reg, file)
        candidates = [Candidate(adopted, str(file))] if adopted and not as_key else _identify(reg, file, as_key)
        # SQLAlchemy's import and the query below also overlap the hash
        registered = reg.state.asset_records([c.asset.key for c in candidates])
        staged_by_source: dict[str | None, Staged] = {}
        wanted = {c.member for c in candidates if c.member}
        for name, src, size in archives.stream_members(file, wanted) if wanted else ():
            with archives.refusing_damage(file, name), progress(size, name) as bar:  # all members, one pass
                staged_by_source[name] = reg.store.stage_stream(src, bar.update)
            cleanup.callback(staged_by_source[name].discard)
        plans = []
        for cand in candidates if candidates else [None]:
            member = cand.member if cand else None
            if member not in staged_by_source:
                staged_by_source[member] = whole.result() if member is None else stage(reg, file, member, progress)
                cleanup.callback(staged_by_source[member].discard)
            staged = staged_by_source[member]
            if cand is None:  # unknown by name: try the hash
                cand = _identify_by_hash(reg, file, staged.sha256, registered)
                registered.update(reg.state.asset_records([cand.asset.key]))
            plans.append((cand, staged))
        return store_and_place(reg, plans, file, sha256, replace, link, progress, registered)


def add_many(
    reg, paths: list[Path], replace: bool = False, link: str = "copy", progress: Progress = null_progress
) -> tuple[list[AddResult], list[tuple[Path, RegError]]]:
    """`reg add FILE... | DIR`: each file as `add_file` would, on every core (hashlib releases the
    GIL), going on past failures. A directory contributes the files in it whose names are
    catalogued. Returns (what was registered, (file, error) for each failure): what succeeded is
    stored and placed, what failed left nothing behind."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    names = {n for a in reg.catalog.assets.values() for n in a.filenames}
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.name in names)
        else:
            files.append(p)
    _ = reg.state  # engine, migration and catalog once, before the threads share them
    results: list[AddResult] = []
    failed: list[tuple[Path, RegError]] = []
    # Twice the cores: a file waits on its fsync as often as on the CPU.
    with ThreadPoolExecutor(2 * (os.cpu_count() or 1)) as pool:
        futures = [(f, pool.submit(add_file, reg, f, None, None, replace, link, progress)) for f in files]
        for f, future in futures:
            try:
                results += future.result()
            except RegError as exc:
                failed.append((f, exc))
    return results, failed


def _adoption_target(reg, file: Path) -> Asset | None:
    """The asset whose pipeline path *is* this file (the owner copied it in place by hand)."""
    return reg.asset_by_placement.get(os.path.abspath(file))


def _identify(reg, file: Path, as_key: str | None) -> list[Candidate]:
    """By --as, else by file name, else as an archive whose members are catalogued. [] = try the hash."""
    catalog = reg.catalog
    if as_key:
        asset = catalog.asset(as_key)
        if file.name not in asset.filenames and archives.is_archive(file):
            members = [m for m in archives.members(file) if PurePosixPath(m).name in asset.filenames]
            if members:
                return [Candidate(asset, f"{file}!{members[0]}", members[0])]
        return [Candidate(asset, str(file))]
    by_name = reg.assets_by_filename.get(file.name, [])
    if len(by_name) == 1:
        return [Candidate(by_name[0], str(file))]
    if len(by_name) > 1:
        keys = ", ".join(a.key for a in by_name)
        raise IdentifyError(
            f"{file} could be any of: {keys}. Say which with --as KEY, e.g. `reg add {file} --as {by_name[0].key}`."
        )
    if archives.is_archive(file):
        found = []
        for member in archives.members(file):
            for asset in reg.assets_by_filename.get(PurePosixPath(member).name, []):
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
    pinned = reg.state.pinned_hashes()
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
