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
    recs = reg.state.asset_records()
    results = []
    for key, rec in sorted(recs.items()):
        if keys and key not in keys:
            continue
        results.append(_verify_one(reg, rec, full, progress))
    return results


def _verify_one(reg, rec, full: bool, progress: Progress) -> VerifyResult:
    path = Path(rec.placed_path)
    try:
        fp = Fingerprint.of(path)
    except OSError:
        if rec.state != "missing":
            reg.state.record_check(rec.key, "missing", None, "missing", f"{path} is gone")
        return VerifyResult(rec.key, "missing", False, str(path), f"{path} is gone")
    unchanged = fp.matches(rec.fingerprint)
    if unchanged and not full:
        return VerifyResult(rec.key, rec.state, False, str(path))
    with progress(fp.size, rec.key) as bar:
        sha, _ = hash_file(path, bar.update)
    if sha == rec.sha256:
        event = "verified" if rec.state != "verified" or full else None
        reg.state.record_check(
            rec.key, "verified", fp, event, "full rehash" if full else "rehashed after a stat change"
        )
        return VerifyResult(rec.key, "verified", True, str(path))
    detail = f"{path} now has sha256 {sha}, verified was {rec.sha256}"
    if rec.state != "changed":
        reg.state.record_check(rec.key, "changed", None, "changed", detail)
    return VerifyResult(rec.key, "changed", True, str(path), detail)
