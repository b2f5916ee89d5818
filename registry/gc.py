"""`reg gc`: remove store objects nothing refers to any more.

An object stays while any machine's placement (a pinned hash), the catalog (a sha256 pin) or a
run (its inputs and outputs, passed in by the caller: the registry does not read the runner's
tables) refers to it. Everything else, e.g. files displaced by `--replace` or forgotten by
`reg rm`, goes, and so do stages and derive folders left in `objects/tmp` by a killed process;
`--dry-run` lists exactly what would go first.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable


def collect(reg, run_references: Iterable[str], dry_run: bool = True) -> dict:
    keep = set(reg.state.pinned_hashes()) | set(run_references)
    keep |= {a.sha256 for a in reg.catalog.assets.values() if a.sha256}
    garbage = {sha: size for sha, size in sorted(reg.state.object_sizes().items()) if sha not in keep}
    objects = [{"sha256": sha, "size": size, "path": str(reg.store.object_path(sha))} for sha, size in garbage.items()]
    scratch = reg.store.stale_scratch()
    scratch_bytes = sum(
        f.stat().st_size for p in scratch for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()
    )
    if not dry_run:
        for o in objects:
            reg.store.object_path(o["sha256"]).unlink(missing_ok=True)
        if garbage:
            reg.state.delete_objects(list(garbage))
        for p in scratch:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    return {
        "dry_run": dry_run,
        "objects": objects,
        "bytes": sum(garbage.values()) + scratch_bytes,
        "scratch": [str(p) for p in scratch],  # stages and derive folders of killed processes
    }
