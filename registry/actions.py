"""The action rules: for one asset that blocks something, who must do what to unblock it.

`reg status` and the render gate word their advice through these same rules. An action id names
the action (`licence:flame`, `fetch:KEY`, ...); assets sharing an id share one action.
"""

from __future__ import annotations

from datetime import datetime

from .catalog import Asset, Pipeline
from .state import EnvironmentCheck, now


def days_since(when: datetime | None) -> int | None:
    return None if when is None else (now() - when).days


def _download_url(asset: Asset) -> str:
    """The URL `reg fetch` will use: a Hub file through $HF_ENDPOINT (a mirror, the tests' stand-in)."""
    src = asset.source
    if src.type == "huggingface":
        import os

        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
        return f"{endpoint}/{src.repo}/resolve/{src.revision}/{src.file}"
    return src.url


def _ago(when: datetime | None) -> str:
    days = days_since(when)
    if days is None:
        return "at an unknown date"
    return {0: "today", 1: "yesterday"}.get(days, f"{days} days ago")


def action_for(reg, asset: Asset, state: str, path: str, licences: dict, gates: dict, states: dict) -> tuple[str, dict]:
    """(action id, action body) for one blocking asset; assets sharing an id share the action."""
    if state == "unverified":
        return f"adopt:{asset.key}", {
            "who": "machine",
            "title": f"Register {asset.name}: a file is at its path but not in this registry",
            "steps": [
                f"{path} exists but is not registered in this registry ({reg.root}); it may have been "
                "placed by another registry or copied in by hand. `reg add` checks it and registers it here"
            ],
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
        pending = [k for k in src.inputs if states[k]["state"] not in ("verified", "unchecked")]
        if pending:  # what blocks the input blocks this file too; deriving comes after
            first = reg.catalog.assets[pending[0]]
            return action_for(
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
                f"licence requested {_ago(rec.requested_at if rec else None)}; "
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
                "days_waiting": days_since(rec.requested_at) if rec and lstate == "requested" else None,
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
        "steps": [f"download {_download_url(asset)}" + (f" ({asset.size:,} bytes)" if asset.size else "")],
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


def environment_action(p: Pipeline, check: EnvironmentCheck) -> dict:
    """The owner action for a pipeline whose last environment check found problems."""
    return {
        "id": f"environment:{p.key}",
        "who": "owner",
        "title": f"Fix the {p.name} environment",
        "steps": check.problems + [f"checked {check.checked_at:%Y-%m-%d %H:%M} UTC; `reg env {p.key}` checks again"],
        "commands": [f"reg env {p.key}"],
        "assets": [],
        "pipelines": [],
        "unblocks": [],
    }
