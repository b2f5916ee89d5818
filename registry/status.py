"""`reg status`: what is blocked, by what, and the exact action that unblocks it.

Read-only and cheap: one query per table and one stat per catalogued file; no hashing (a file
whose stat fingerprint moved is reported as changed and left to `reg verify`). The report is a
plain dict, the stable JSON document of `reg status --json` (schema documented in README.md).
"""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import datetime

from . import records
from .catalog import Asset
from .store import Fingerprint

SCHEMA = "reg.status/1"


def asset_states(reg) -> dict[str, dict]:
    """key -> {state, path, sha256}; state is verified | changed | missing | unverified."""
    recs = records.placements(reg)
    out = {}
    for key, asset in reg.catalog.assets.items():
        path = reg.placement(asset)
        rec = recs.get(key)
        try:
            st = os.stat(path)
            fp = Fingerprint(st.st_size, st.st_mtime_ns, st.st_ino)
        except OSError:
            fp = None
        if rec is None:
            state = "unverified" if fp else "missing"
        elif fp is None:
            state = "missing"
        elif rec[1] == "changed" or fp != rec[2]:
            state = "changed"
        else:
            state = rec[1]
        out[key] = {"state": state, "path": path, "sha256": rec[0] if rec else None}
    return out


def save_environment_check(reg, pipeline: str, problems: list[str]) -> None:
    """Keep the last environment check of a pipeline (made by the runner) for status to show."""
    import json

    path = reg.root / "cache" / f"environment-{pipeline}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"checked_at": records.now().isoformat(timespec="seconds"), "problems": problems}))
    except OSError:
        pass  # a read-only root still renders; status then says "not checked"


def environment_check(reg, pipeline: str) -> dict | None:
    import json

    try:
        return json.loads((reg.root / "cache" / f"environment-{pipeline}.json").read_text())
    except (OSError, ValueError):
        return None


def _days_since(when: datetime | None) -> int | None:
    return None if when is None else (records.now() - when).days


def _action_for(
    reg, asset: Asset, state: str, path: str, licences: dict, gates: dict, states: dict
) -> tuple[str, dict]:
    """(action id, action body) for one blocking asset; assets sharing an id share the action."""
    if state == "unverified":
        return f"adopt:{asset.key}", {
            "who": "machine",
            "title": f"Verify {asset.name}, found at the pipeline path but never verified",
            "steps": [f"{path} exists but reg has not verified it"],
            "commands": [f"reg add {path}"],
        }
    if state == "changed":
        return f"check:{asset.key}", {
            "who": "machine",
            "title": f"Re-verify {asset.name}: the file changed since it was verified",
            "steps": [
                f"{path} differs (size, mtime or inode) from the verified file",
                "if `reg verify` reports it changed, restore it or accept it with `reg add PATH --replace`",
            ],
            "commands": [f"reg verify {asset.key}"],
        }
    src = asset.source
    if src.type == "derived":
        pending = [k for k in src.inputs if states[k]["state"] != "verified"]
        if pending:  # what blocks the input blocks this file too; deriving comes after
            first = reg.catalog.assets[pending[0]]
            return _action_for(
                reg, first, states[first.key]["state"], states[first.key]["path"], licences, gates, states
            )
        return f"derive:{asset.key}", {
            "who": "machine",
            "title": f"Derive {asset.name} from {', '.join(src.inputs)}",
            "steps": [f"run `{' '.join(src.command)}` in the {src.pipeline or asset.pipeline} checkout"],
            "commands": [],
        }
    if src.type == "gated":
        lic = reg.catalog.licences[src.licence]
        rec = licences.get(lic.key)
        lstate = rec.state if rec else "not-requested"
        downloads = ", ".join(lic.downloads) or asset.filenames[0]
        steps = {
            "not-requested": [
                f"register at {lic.register} and accept the {lic.licence}",
                f"record it: reg license {lic.key} requested",
                f"wait for manual approval ({lic.note or 'hours to days'})",
                f"download {downloads}",
            ],
            "requested": [
                f"licence requested {_days_since(rec.requested_at) if rec else '?'} day(s) ago; "
                f"waiting for approval from {lic.register}",
                f"once approved: reg license {lic.key} approved, then download {downloads}",
            ],
            "approved": [f"licence approved: log in at {lic.register} and download {downloads}"],
            "rejected": [
                f"the request was rejected ({rec.note if rec and rec.note else 'no note'}); "
                f"contact the licensor via {lic.register} or choose another pipeline"
            ],
        }[lstate]
        title = {
            "not-requested": f"Register for {lic.name}",
            "requested": f"Wait for {lic.name} approval",
            "approved": f"Download {lic.name}",
            "rejected": f"{lic.name} was refused",
        }[lstate]
        return f"licence:{lic.key}", {
            "who": "owner",
            "title": title,
            "steps": steps,
            "commands": [],
            "licence": {
                "key": lic.key,
                "name": lic.name,
                "licence": lic.licence,
                "register": lic.register,
                "state": lstate,
                "note": rec.note if rec else "",
                "requested_at": rec.requested_at.isoformat() if rec and rec.requested_at else None,
                "days_waiting": _days_since(rec.requested_at) if rec and lstate == "requested" else None,
            },
        }
    if src.type == "owner":
        return "provide:media", {
            "who": "owner",
            "title": "Provide the episodes' media (narration audio, reference portrait)",
            "steps": ["export each file from the edit and add it under its episode's key"],
            "commands": [],
        }
    if asset.key in gates:
        return f"hf-gated:{src.repo}", {
            "who": "owner",
            "title": f"Accept the conditions of the gated Hugging Face repository {src.repo}",
            "steps": [
                f"open {gates[asset.key]} and accept its conditions with your account",
                "log in on this machine: hf auth login (or set HF_TOKEN)",
            ],
            "commands": [],
        }
    return f"fetch:{asset.key}", {
        "who": "machine",
        "title": f"Download {asset.name}",
        "steps": [f"download {src.url}" + (f" ({asset.size:,} bytes)" if asset.size else "")],
        "commands": [],
    }


def add_command(asset: Asset, action_id: str) -> str | None:
    """The `reg add` (fetch, derive) line that completes an action once the file is at hand."""
    if asset.source.type == "derived":
        return f"reg derive {asset.key}"
    kind = action_id.split(":")[0]
    if kind == "licence":
        return f"reg add {asset.source.archive or asset.filenames[0]}"
    if kind == "provide":
        return f"reg add {asset.filenames[0]} --as {asset.key}"
    if kind in ("fetch", "hf-gated"):
        return f"reg fetch {asset.key}"
    return None


def build_status(reg) -> dict:
    catalog = reg.catalog
    states = asset_states(reg)
    licences = records.licence_records(reg)
    gates = records.source_gates(reg)
    actions: dict[str, dict] = {}
    blocker_action: dict[str, str] = {}
    overrides = records.version_states(reg)  # promotions recorded here win over the manifests

    def state_of(v) -> str:
        return overrides.get((v.episode, v.version), v.state)

    urgent = {
        k
        for v in catalog.all_versions()
        if state_of(v) in ("production", "candidate")
        for k in catalog.version_inputs(v)
    }
    for key, info in sorted(states.items(), key=lambda kv: kv[0] not in urgent):  # urgent files lead each action
        if info["state"] == "verified":
            continue
        asset = catalog.assets[key]
        aid, body = _action_for(reg, asset, info["state"], info["path"], licences, gates, states)
        act = actions.setdefault(aid, {"id": aid, **body, "assets": [], "unblocks": [], "pipelines": []})
        act["assets"].append(key)
        cmd = add_command(asset, aid)
        if cmd and cmd not in act["commands"]:
            act["commands"].append(cmd)
        blocker_action[key] = aid

    env_checks = {k: environment_check(reg, k) for k in catalog.pipelines}
    env_broken = {k for k, env in env_checks.items() if env and env["problems"]}
    versions = []
    for v in catalog.all_versions():
        blockers = [
            {"asset": k, "state": states[k]["state"], "action": blocker_action[k]}
            for k in catalog.version_inputs(v)
            if states[k]["state"] != "verified"
        ]
        if v.pipeline in env_broken:  # known from the last check; an unchecked environment is not a blocker
            blockers.append({"asset": None, "state": "environment", "action": f"environment:{v.pipeline}"})
        versions.append(
            {
                "episode": v.episode,
                "version": v.version,
                "pipeline": v.pipeline,
                "state": state_of(v),
                "ready": not blockers,
                "blockers": blockers,
                "note": v.note,
            }
        )
        for aid in dict.fromkeys(b["action"] for b in blockers):
            if aid in actions:
                actions[aid]["unblocks"].append({"episode": v.episode, "version": v.version})
    pipelines = []
    for p in catalog.pipelines.values():
        blockers = [
            {"asset": k, "state": states[k]["state"], "action": blocker_action[k]}
            for k in p.requires
            if states[k]["state"] != "verified"
        ]
        env = env_checks[p.key]
        if p.key in env_broken:
            blockers.append({"asset": None, "state": "environment", "action": f"environment:{p.key}"})
        pipelines.append(
            {
                "key": p.key,
                "name": p.name,
                "root": str(reg.pipeline_root(p.key)),
                "ready": not blockers,
                "blockers": blockers,
                "environment": {
                    "notes": list(p.environment),
                    "packages": p.packages,
                    "binaries": list(p.binaries),
                    "last_check": env,
                },
            }
        )
        for aid in dict.fromkeys(b["action"] for b in blockers if b["asset"]):
            actions[aid]["pipelines"].append(p.key)
        if p.key in env_broken:
            actions[f"environment:{p.key}"] = {
                "id": f"environment:{p.key}",
                "who": "owner",
                "title": f"Fix the {p.name} environment",
                "steps": env["problems"] + [f"checked {env['checked_at']} UTC; `reg env {p.key}` checks again"],
                "commands": [f"reg env {p.key}"],
                "assets": [],
                "pipelines": [p.key],
                "unblocks": [
                    {"episode": v.episode, "version": v.version} for v in catalog.all_versions() if v.pipeline == p.key
                ],
            }

    # Licences first: approval takes days, so the clock should start before anything else.
    ordered = sorted(
        actions.values(),
        key=lambda a: (not a["id"].startswith("licence:"), -len(a["unblocks"]), -len(a["pipelines"]), a["id"]),
    )
    counts = defaultdict(int)
    for info in states.values():
        counts[info["state"]] += 1
    return {
        "schema": SCHEMA,
        "root": str(reg.root),
        "summary": {
            "assets": len(states),
            **{s: counts[s] for s in ("verified", "unverified", "changed", "missing")},
            "versions": len(versions),
            "ready": sum(v["ready"] for v in versions),
            "blocked": sum(not v["ready"] for v in versions),
        },
        "owner_actions": [a for a in ordered if a["who"] == "owner"],
        "machine_actions": [a for a in ordered if a["who"] == "machine"],
        "versions": versions,
        "production": [v for v in versions if v["state"] == "production"],
        "pipelines": pipelines,
        "assets": states,
    }
