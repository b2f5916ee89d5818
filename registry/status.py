"""`reg status`: what is blocked, by what, and the exact action that unblocks it.

Read-only and cheap: one query per table and one stat per catalogued file; no hashing (a file
whose stat fingerprint moved is reported as changed and left to `reg verify`). The report is a
plain dict, the stable JSON document of `reg status --json` (schema documented in README.md).
The render gate asks the narrow question instead (`blockers_of`: only its own inputs).
"""

from __future__ import annotations

import contextlib
import glob
import os
from collections import defaultdict
from collections.abc import Iterable
from typing import Literal

from .actions import action_for, add_command, environment_action
from .catalog import Pipeline
from .state import EnvironmentCheck
from .store import Fingerprint

SCHEMA = "reg.status/1"
AssetState = Literal["verified", "unchecked", "unverified", "changed", "missing"]
# Present and usable: "unchecked" is a registered file whose content nothing can check (validator
# "none", no sha256 pinned in the catalog, no content checks). It does not block a render (the gate
# warns and the run records it), but it is not counted as verified.
PRESENT = ("verified", "unchecked")


def content_unchecked(asset) -> bool:
    """Nothing checks what this asset holds: any bytes at all would be accepted as it."""
    return asset.validator == "none" and not asset.sha256 and not asset.checks


def asset_states(reg, keys: Iterable[str] | None = None) -> dict[str, dict]:
    """key -> {state, path, sha256}; state is verified | unchecked | changed | missing | unverified."""
    recs = reg.state.placements()
    assets = reg.catalog.assets
    out = {}
    for key in assets if keys is None else keys:
        path = reg.placement(assets[key])
        rec = recs.get(key)
        try:
            fp = Fingerprint.from_stat(os.stat(path))
        except OSError:
            fp = None
        state: AssetState
        if rec is None:
            state = "unverified" if fp else "missing"
        elif fp is None:
            state = "missing"
        elif rec[1] == "changed" or not fp.matches(rec[2]):
            state = "changed"
        else:
            state = rec[1]
            if state == "verified" and content_unchecked(assets[key]):
                state = "unchecked"
        out[key] = {"state": state, "path": path, "sha256": rec[0] if rec else None}
    return out


def python_of(pipeline: Pipeline) -> str:
    """The interpreter of the pipeline's virtualenv (it need not exist for a dry run)."""
    if not pipeline.venv:
        import sys

        return sys.executable
    return os.path.join(os.path.expanduser(pipeline.venv), "bin", "python")


def interpreter_fingerprint(python: str) -> str:
    """Changes when packages are installed or removed: the interpreter and its site-packages' mtimes.

    Cheap (a few stats), so status can tell a stale environment check without spawning anything."""
    venv = os.path.dirname(os.path.dirname(python))
    parts = [python]
    for site in sorted(glob.glob(os.path.join(venv, "lib", "python*", "site-packages"))):
        with contextlib.suppress(OSError):
            parts.append(f"{site}@{os.stat(site).st_mtime_ns}")
    return "|".join(parts)


def current_environment_checks(reg) -> dict[str, EnvironmentCheck]:
    """This machine's last check per pipeline, dropping those made before the venv last changed."""
    checks = reg.state.environment_checks()
    return {
        key: check
        for key, check in checks.items()
        if key in reg.catalog.pipelines
        and check.interpreter == interpreter_fingerprint(python_of(reg.catalog.pipelines[key]))
    }


def _collect_actions(reg, states: dict[str, dict], keys: Iterable[str]) -> tuple[dict[str, dict], dict[str, str]]:
    """The actions for every non-verified asset among `keys`, and asset key -> action id."""
    catalog = reg.catalog
    licences, gates = reg.state.licences(), reg.state.source_gates()
    actions: dict[str, dict] = {}
    blocker_action: dict[str, str] = {}
    for key in keys:
        info = states[key]
        if info["state"] in PRESENT:
            continue
        asset = catalog.assets[key]
        aid, body = action_for(reg, asset, info["state"], info["path"], licences, gates, states)
        act = actions.get(aid)
        if act is None:
            act = actions[aid] = {"id": aid, **body, "assets": [], "unblocks": [], "pipelines": []}
        act["assets"].append(key)
        cmd = add_command(asset, aid)
        if cmd and cmd not in act["commands"]:
            act["commands"].append(cmd)
        blocker_action[key] = aid
    return actions, blocker_action


def _with_derived_inputs(reg, keys: Iterable[str]) -> list[str]:
    """Keys plus the inputs of derived ones (their actions depend on their inputs' states)."""
    out = dict.fromkeys(keys)
    stack = list(out)
    while stack:
        for k in reg.catalog.assets[stack.pop()].source.inputs:
            if k not in out:
                out[k] = None
                stack.append(k)
    return list(out)


def blockers_of(reg, keys: list[str]) -> tuple[dict[str, dict], list[dict], list[dict]]:
    """The render gate's question for one plan: (states, blockers, actions) of just these inputs."""
    states = asset_states(reg, _with_derived_inputs(reg, keys))
    actions, blocker_action = _collect_actions(reg, states, keys)
    blockers = [{"asset": k, "state": states[k]["state"], "action": blocker_action[k]} for k in blocker_action]
    return states, blockers, list(actions.values())


def build_status(reg, version_overrides: dict[tuple[str, str], str] | None = None, episode: str | None = None) -> dict:
    """The whole report. `version_overrides`: promotions recorded by the runner, which win over the
    manifests' version states (the runner's records are passed in; the registry never reads them).
    `episode`: only that episode's versions and the actions that unblock them (`status --episode`)."""
    catalog = reg.catalog
    states = asset_states(reg)
    overrides = version_overrides or {}

    def state_of(v) -> str:
        return overrides.get((v.episode, v.version), v.state)

    urgent = {
        k
        for v in catalog.all_versions()
        if state_of(v) in ("production", "candidate")
        for k in catalog.version_inputs(v)
    }
    ordered_keys = sorted(states, key=lambda k: k not in urgent)  # urgent files lead each action
    actions, blocker_action = _collect_actions(reg, states, ordered_keys)

    env_checks = current_environment_checks(reg)
    env_broken = {k for k, check in env_checks.items() if check.problems}
    for key in env_broken:
        actions[f"environment:{key}"] = environment_action(catalog.pipelines[key], env_checks[key])

    def blockers_of_keys(keys, pipeline: str) -> list[dict]:
        out = [
            {"asset": k, "state": states[k]["state"], "action": blocker_action[k]}
            for k in keys
            if states[k]["state"] not in PRESENT
        ]
        if pipeline in env_broken:  # known from the last check; an unchecked environment blocks nothing
            out.append({"asset": None, "state": "environment", "action": f"environment:{pipeline}"})
        return out

    versions = []
    for v in catalog.all_versions():
        blockers = blockers_of_keys(catalog.version_inputs(v), v.pipeline)
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
            actions[aid]["unblocks"].append({"episode": v.episode, "version": v.version})
    pipelines = []
    for p in catalog.pipelines.values():
        blockers = blockers_of_keys(p.requires, p.key)
        check = env_checks.get(p.key)
        last_check = (
            {"checked_at": check.checked_at.isoformat(timespec="seconds"), "problems": check.problems}
            if check
            else None
        )
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
                    "last_check": last_check,
                },
            }
        )
        for aid in dict.fromkeys(b["action"] for b in blockers):
            actions[aid]["pipelines"].append(p.key)

    # Licences first: approval takes days, so the clock should start before anything else.
    ordered = sorted(
        actions.values(),
        key=lambda a: (not a["id"].startswith("licence:"), -len(a["unblocks"]), -len(a["pipelines"]), a["id"]),
    )
    if episode is not None:
        if str(episode) not in catalog.episodes:
            from .errors import UnknownKeyError

            raise UnknownKeyError(
                f"No episode {episode} in the catalog (episodes: {', '.join(catalog.episodes)}).", episode=episode
            )
        versions = [v for v in versions if v["episode"] == str(episode)]
        ordered = [a for a in ordered if any(u["episode"] == str(episode) for u in a["unblocks"])]
    sizes = reg.state.object_sizes()
    counts: dict[str, int] = defaultdict(int)
    for info in states.values():
        counts[info["state"]] += 1
    return {
        "schema": SCHEMA,
        "root": str(reg.root),
        "summary": {
            "assets": len(states),
            **{s: counts[s] for s in ("verified", "unchecked", "unverified", "changed", "missing")},
            "versions": len(versions),
            "ready": sum(v["ready"] for v in versions),
            "blocked": sum(not v["ready"] for v in versions),
            "store_objects": len(sizes),
            "store_bytes": sum(sizes.values()),
        },
        "episode": None if episode is None else str(episode),
        "owner_actions": [a for a in ordered if a["who"] == "owner"],
        "machine_actions": [a for a in ordered if a["who"] == "machine"],
        "versions": versions,
        "production": [v for v in versions if v["state"] == "production"],
        "pipelines": pipelines,
        "assets": states,
    }
