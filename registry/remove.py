"""`reg rm KEY`: take an asset off its pipeline path and forget it on this machine.

The store object stays (another machine, a run or a later `reg add` may want it) until `reg gc`.
Only reg's own placement is removed: a file at the path that is not the verified one is left
where it is, so `rm` never destroys bytes reg does not also hold.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import RegError
from .store import Fingerprint, same_file


def remove(reg, key: str) -> dict:
    asset = reg.catalog.asset(key)
    rec = reg.state.asset_records().get(asset.key)
    if rec is None:
        raise RegError(
            f"'{asset.key}' is not registered on this machine in the registry {reg.root}, so there is nothing to "
            "remove. `reg ls --state verified` lists what is."
        )
    path, obj = Path(rec.placed_path), reg.store.object_path(rec.sha256)
    ours = (path.is_symlink() and Path(os.readlink(path)) == obj) or same_file(path, obj)
    if not ours and path.is_file() and not path.is_symlink():
        ours = Fingerprint.of(path).matches(rec.fingerprint)  # a copy, unchanged since verified
    if ours:
        path.unlink()
    left = "" if ours or not os.path.lexists(path) else f"; {path} differs from the registered file and was left"
    reg.state.forget(asset.key, f"removed from {path}{left}")
    return {"key": asset.key, "path": str(path), "unplaced": ours, "sha256": rec.sha256, "object": str(obj)}
