"""`reg verify`: is every placed file still the one that was verified?

A stat fingerprint (size, mtime_ns, inode) that matches the one taken at verification means
unchanged, with no read of the bytes; only a changed fingerprint (or --full) costs a rehash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .ingest import Progress, null_progress
from .store import Fingerprint, hash_file


@dataclass
class VerifyResult:
    key: str
    state: str  # verified | changed | missing
    rehashed: bool
    path: str
    detail: str = ""


def verify(
    reg, keys: list[str] | None = None, full: bool = False, progress: Progress = null_progress
) -> list[VerifyResult]:
    for k in keys or []:
        reg.catalog.asset(k)
    recs = reg.state.asset_records(list(keys) if keys else None)
    results: list[VerifyResult] = []
    checks: list = []
    for _, rec in sorted(recs.items()):
        results.append(_verify_one(rec, full, progress, checks.append))
    if checks:
        reg.state.record_checks(checks)  # one transaction for all
    return results


def _verify_one(rec, full: bool, progress: Progress, record) -> VerifyResult:
    path = Path(rec.placed_path)
    try:
        fp = Fingerprint.of(path)
    except OSError:
        if rec.state != "missing":
            record((rec.key, "missing", None, "missing", f"{path} is gone"))
        return VerifyResult(rec.key, "missing", False, str(path), f"{path} is gone")
    unchanged = fp.matches(rec.fingerprint)
    if unchanged and not full:
        return VerifyResult(rec.key, rec.state, False, str(path))
    with progress(fp.size, rec.key) as bar:
        sha, _ = hash_file(path, bar.update)
    if sha == rec.sha256:
        event = "verified" if rec.state != "verified" or full else None
        record((rec.key, "verified", fp, event, "full rehash" if full else "rehashed after a stat change"))
        return VerifyResult(rec.key, "verified", True, str(path))
    detail = f"{path} now has sha256 {sha}, verified was {rec.sha256}"
    if rec.state != "changed":
        record((rec.key, "changed", None, "changed", detail))
    return VerifyResult(rec.key, "changed", True, str(path), detail)


@dataclass
class StoreProblem:
    sha256: str
    problem: str  # corrupt | missing | unrecorded
    detail: str
    repaired: bool = False


def check_store(reg, progress: Progress = null_progress) -> list[StoreProblem]:
    """`reg verify --store` (fsck): every object's bytes against its name, every row against an object.

    A corrupt or missing object is repaired from a placement on this machine whose bytes still
    hash to the object's name; otherwise it is reported, and the placements that need it with it.
    """
    store = reg.store
    sizes = reg.state.object_sizes()
    problems: list[StoreProblem] = []
    on_disk = (
        {p.parent.name + p.name: p for p in (store.root / "sha256").glob("??/*") if p.is_file()}
        if (store.root / "sha256").is_dir()
        else {}
    )
    for sha, path in sorted(on_disk.items()):
        with progress(path.stat().st_size, sha[:12]) as bar:
            actual, _ = hash_file(path, bar.update)
        if actual != sha:
            problems.append(StoreProblem(sha, "corrupt", f"{path} holds sha256 {actual}"))
        elif sha not in sizes:
            problems.append(StoreProblem(sha, "unrecorded", f"{path} has no row (`reg gc` may remove it)"))
    problems += [
        StoreProblem(sha, "missing", f"{store.object_path(sha)} is gone") for sha in sorted(set(sizes) - set(on_disk))
    ]
    placements = reg.state.asset_records()
    for p in problems:
        if p.problem == "unrecorded":
            continue
        for rec in placements.values():
            if rec.sha256 != p.sha256 or not Path(rec.placed_path).is_file():
                continue
            if hash_file(Path(rec.placed_path))[0] != p.sha256:
                continue
            store.object_path(p.sha256).unlink(missing_ok=True)
            store.commit(store.stage_file(Path(rec.placed_path)))
            p.repaired, p.detail = True, f"{p.detail}; repaired from {rec.placed_path}"
            break
        else:
            users = [k for k, r in placements.items() if r.sha256 == p.sha256]
            if users:
                p.detail += f"; needed by {', '.join(users)}: `reg add` or `reg fetch` them again"
    return problems
