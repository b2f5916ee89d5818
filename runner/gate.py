"""The gate: a render starts only when every input is registered, present and verified."""

from __future__ import annotations

from dataclasses import dataclass, field

from reg.registry.catalog import Pipeline
from reg.registry.status import PRESENT, interpreter_fingerprint, python_of

from . import execute
from .plan import Plan


@dataclass
class GateVerdict:
    ok: bool
    inputs: dict[str, str | None]  # asset key -> verified sha256 (None when not verified)
    blockers: list[dict] = field(default_factory=list)  # {"asset", "state", "action"} as in `reg status`
    actions: list[dict] = field(default_factory=list)  # the status actions that clear them, same wording
    problems: list[str] = field(default_factory=list)  # checkout, venv, packages, binaries
    environment: dict = field(default_factory=dict)  # facts about the venv and machine (the run records them)
    warnings: list[str] = field(default_factory=list)  # inputs used as they are, content unchecked


def check(reg, plan: Plan) -> GateVerdict:
    """Stat every input right now (a file changed since verification is rehashed), then judge."""
    from reg.registry.status import blockers_of
    from reg.registry.verify import verify

    verify(reg, plan.inputs)
    states, blockers, actions = blockers_of(reg, plan.inputs)
    inputs = {k: states[k]["sha256"] if states[k]["state"] in PRESENT else None for k in plan.inputs}
    unchecked = [k for k in plan.inputs if states[k]["state"] == "unchecked"]
    problems, facts = environment(reg, plan.pipeline)
    if problems:
        from reg.registry.actions import environment_action
        from reg.registry.state import EnvironmentCheck, now

        blockers.append({"asset": None, "state": "environment", "action": f"environment:{plan.pipeline.key}"})
        actions.append(environment_action(plan.pipeline, EnvironmentCheck(now(), problems, "")))
    warnings = [
        f"{k} is present but its content is unchecked (no validator, no sha256 in the catalog): any file "
        "at that path is accepted"
        for k in unchecked
    ]
    if unchecked:
        facts = {**facts, "unchecked_inputs": unchecked}  # the run records what nothing vouched for
    return GateVerdict(not blockers, inputs, blockers, actions, problems, facts, warnings)


def environment(reg, p: Pipeline) -> tuple[list[str], dict]:
    """What would fail a step for want of its environment, and the environment's facts.

    The checkout and the venv's interpreter must exist; every package the pipeline declares must
    be installed in that venv at a version its specifier accepts; every binary it declares must be
    on the venv's PATH. Facts (Python, all package versions, GPUs) are what a run records. The
    verdict is kept in the database with the interpreter's fingerprint, so that `reg status` can
    show it without spawning, and knows when a later `pip install` made it stale.
    """
    import os
    import shutil

    root = reg.pipeline_root(p.key)
    python = python_of(p)
    problems, facts = [], {}
    if not root.is_dir():
        problems.append(
            f"the {p.name} checkout {root} does not exist: clone {p.repo or 'it'} there, or point reg "
            f"at yours with `reg config pipelines.{p.key}.root PATH`"
        )
    if p.venv and not os.access(python, os.X_OK):
        problems.append(
            f"the virtualenv interpreter {python} does not exist: create the venv ({p.venv}) and "
            f"install {p.name}'s requirements in it"
        )
    else:
        facts = execute.environment_facts(python)
        installed = {_normal(name): version for name, version in facts.get("packages", {}).items()}
        pip = os.path.join(os.path.dirname(python), "pip")
        for name, spec in p.packages.items():
            have = installed.get(_normal(name))
            if have is None:
                problems.append(f"{name} is not installed in {python}'s environment: {pip} install '{name}{spec}'")
            elif spec and not _satisfies(have, spec):
                problems.append(
                    f"{name} {have} is installed but {p.name} needs {name}{spec}: {pip} install '{name}{spec}'"
                )
        path = os.pathsep.join(filter(None, [os.path.dirname(python) if p.venv else "", os.environ.get("PATH")]))
        for binary in p.binaries:
            if shutil.which(binary, path=path) is None:
                problems.append(
                    f"{binary} is not on PATH (needed by {p.name}): install it, e.g. `apt install {binary}`"
                )
    reg.state.save_environment_check(p.key, problems, interpreter_fingerprint(python))
    return problems, facts


def _normal(name: str) -> str:
    """PEP 503 name normalisation: `Pytorch_Lightning` and `pytorch-lightning` are one package."""
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def _satisfies(version: str, spec: str) -> bool:
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    try:
        return SpecifierSet(spec).contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False
