"""`reg ls`: one row per catalogued asset, with the filters a person asks for first."""

from __future__ import annotations

from .errors import RegError
from .status import asset_states

STATES = ("verified", "unchecked", "unverified", "changed", "missing")


def asset_rows(reg, missing: bool = False, pipeline: str | None = None, state: str | None = None) -> list[dict]:
    """Rows of `reg ls`. `size` is the stored object's size for a registered file (what is on
    disk), else the catalog's expected size; `missing` keeps what is not verified (as `fetch --missing`)."""
    if pipeline and pipeline not in reg.catalog.pipelines:
        raise RegError(f"No pipeline '{pipeline}' in the catalog (known: {', '.join(reg.catalog.pipelines)}).")
    states, lic = asset_states(reg), reg.state.licences()
    sizes = reg.state.object_sizes()
    rows = []
    for key, a in reg.catalog.assets.items():
        st = states[key]
        if (missing and st["state"] in ("verified", "unchecked")) or (state and st["state"] != state):
            continue
        if pipeline and a.pipeline != pipeline:
            continue
        licence = None
        if a.source.type == "gated":  # "acquired" is derived: the file is registered and verified
            licence = (
                "acquired"
                if st["state"] in ("verified", "unchecked")
                else getattr(lic.get(a.source.licence), "state", "not-requested")
            )
        rows.append(
            {
                "key": key,
                "state": st["state"],
                "kind": a.kind,
                "pipeline": a.pipeline,
                "size": sizes.get(st["sha256"]) if st["sha256"] else a.size,
                "source": a.source.type,
                "licence": licence,
                "path": st["path"],
            }
        )
    return rows
