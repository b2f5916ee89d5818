"""The gate: a render starts only when every input is registered, present and verified."""

from __future__ import annotations

from dataclasses import dataclass, field

from .plan import Plan


@dataclass
class GateVerdict:
    ok: bool
    inputs: dict[str, str | None]  # asset key -> verified sha256 (None when not verified)
    blockers: list[dict] = field(default_factory=list)  # {"asset", "state", "action"} as in `reg status`
    actions: list[dict] = field(default_factory=list)  # the status actions that clear them, same wording
    problems: list[str] = field(default_factory=list)  # checkout or virtualenv missing


def check(reg, plan: Plan) -> GateVerdict:
    """Stat every input right now (a file changed since verification is rehashed), then judge."""
    from registry.status import build_status
    from registry.verify import verify

    verify(reg, plan.inputs)
    report = build_status(reg)
    states = report["assets"]
    blockers = [{"asset": k, "state": states[k]["state"], "action": _action_id(report, k)}
                for k in plan.inputs if states[k]["state"] != "verified"]
    actions = _actions_for(reg, report, blockers)
    inputs = {k: states[k]["sha256"] if states[k]["state"] == "verified" else None for k in plan.inputs}
    problems = environment_problems(reg, plan)
    return GateVerdict(not blockers and not problems, inputs, blockers, actions, problems)


def environment_problems(reg, plan: Plan) -> list[str]:
    """A checkout or virtualenv that is not there would fail the first step; say so up front."""
    import os

    from .plan import python_of

    p = plan.pipeline
    root = reg.pipeline_root(p.key)
    problems = []
    if not root.is_dir():
        problems.append(f"the {p.name} checkout {root} does not exist: clone {p.repo or 'it'} there, or point reg "
                        f"at yours with `reg config pipelines.{p.key}.root PATH`")
    python = python_of(reg, p)
    if p.venv and not os.access(python, os.X_OK):
        problems.append(f"the virtualenv interpreter {python} does not exist: create the venv ({p.venv}) and "
                        f"install {p.name}'s requirements in it")
    return problems


def _actions_for(reg, report: dict, blockers: list[dict]) -> list[dict]:
    """The status actions for these blockers, narrowed to this render's files (same wording)."""
    from registry.status import add_command

    mine = {b["asset"] for b in blockers}
    out = []
    for a in report["owner_actions"] + report["machine_actions"]:
        assets = [k for k in a["assets"] if k in mine]
        if assets:
            commands = [c for c in dict.fromkeys(add_command(reg.catalog.assets[k], a["id"]) for k in assets) if c]
            out.append({**a, "assets": assets, "commands": commands or a["commands"], "unblocks": [], "pipelines": []})
    return out


def _action_id(report: dict, key: str) -> str:
    return next(a["id"] for a in report["owner_actions"] + report["machine_actions"] if key in a["assets"])
