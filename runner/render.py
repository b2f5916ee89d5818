"""`reg render`: plan -> gate -> (up to date?) -> lock and record -> execute -> store outputs -> record.

Nothing is launched and no run is written unless the gate passes; every run that starts ends as
succeeded, failed, timed-out, cancelled, or (if its process vanished) lost, never running for ever.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from reg.runner.records import RunRecords, RunState

from . import execute, gate
from .plan import Plan, find_version, resolve

Events = Callable[[dict], None]


def _quiet(_event: dict) -> None:
    pass


@dataclass
class RenderResult:
    episode: str
    version: str
    state: str  # dry-run | blocked | up-to-date | succeeded | failed | timed-out | cancelled
    plan: Plan | None
    verdict: gate.GateVerdict | None
    run_id: int | None = None
    error: str = ""
    previous_run: int | None = None
    outputs: dict = field(default_factory=dict)


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def holder_alive(run) -> bool:
    """Is the process that recorded this run still running it? Unknown hosts count as alive.

    A dead holder's leftover step processes are killed (and waited for) before this says no, so
    the run that takes over never overlaps them."""
    if run is None:
        return False
    if run.host != socket.gethostname():
        return True  # another machine's run: only that machine can tell
    if run.boot_id and run.boot_id != boot_id():
        return False  # this machine rebooted since
    try:
        os.kill(run.pid, 0)
        return True
    except ProcessLookupError:
        pass
    except PermissionError:
        return True
    execute.reap_leftovers(run.id)
    return False


def render(
    reg,
    episode: str,
    version: str,
    *,
    dry_run: bool = False,
    force: bool = False,
    timeout: float | None = None,
    on_event: Events = _quiet,
    on_line: Callable[[bytes], None] = lambda _l: None,
) -> RenderResult:
    run_dir = reg.root / "runs" / f"{episode}-{version}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    plan = resolve(reg, str(episode), version, run_dir)
    verdict = gate.check(reg, plan)
    result = RenderResult(plan.version.episode, version, "dry-run", plan, verdict)
    on_event(
        {"event": "gate", "episode": result.episode, "version": version, "ok": verdict.ok, "blockers": verdict.blockers}
    )
    if dry_run:
        return result
    if not verdict.ok:
        result.state = "blocked"
        return result
    fingerprint = plan.fingerprint({k: v or "" for k, v in verdict.inputs.items()})
    done = [r for r in RunRecords(reg.engine).runs(result.episode, version) if r.state == "succeeded"]
    if done and done[-1].fingerprint == fingerprint and not force:
        result.state, result.previous_run = "up-to-date", done[-1].id
        return result
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    run_id = RunRecords(reg.engine).start_run(
        {
            "episode": result.episode,
            "version": version,
            "pipeline": plan.pipeline.key,
            "fingerprint": fingerprint,
            "commands": json.dumps([{"step": s.name, "argv": s.argv, "cwd": s.cwd, "env": s.env} for s in plan.steps]),
            "inputs": json.dumps(verdict.inputs),
            "run_dir": str(run_dir),
            "host": socket.gethostname(),
            "boot_id": boot_id(),
            "pid": os.getpid(),
            "environment": "{}",
        },
        holder_alive,
    )
    result.run_id = run_id
    on_event({"event": "start", "run": run_id, "run_dir": str(run_dir)})
    state: RunState = "failed"
    exit_code, error, outputs, environment = None, "", {}, verdict.environment
    try:
        deadline = time.monotonic() + timeout if timeout else None
        with execute.Cancellation() as cancel:
            env = execute.offline_env(reg, plan)
            outcome = execute.run_steps(plan, run_dir / "log.txt", deadline, cancel, on_event, on_line, run_id, env)
        exit_code, error = outcome.exit_code, outcome.error
        if outcome.state == "succeeded":
            # Succeeded only once its outputs are stored: a run recorded without them must not
            # make the next render "up to date".
            outputs = store_outputs(reg, plan.out_dir)
        state = outcome.state
    except BaseException as exc:  # never leave a run "running": record why it ended
        error = f"reg stopped: {type(exc).__name__}: {exc}"
        raise
    finally:
        RunRecords(reg.engine).finish_run(
            run_id, state, exit_code, error, outputs=json.dumps(outputs), environment=json.dumps(environment)
        )
        on_event({"event": "end", "run": run_id, "state": state, "exit_code": exit_code})
    result.state, result.error, result.outputs = state, error, outputs
    return result


def store_outputs(reg, out_dir: Path) -> dict[str, str]:
    """Every file a run wrote goes into the object store: a result traces to its bytes."""
    outputs = {}
    for path in sorted(p for p in out_dir.rglob("*") if p.is_file() and not p.is_symlink()):
        staged = reg.store.stage_file(path)
        reg.store.commit(staged)
        reg.state.record_object(staged.sha256, staged.size)
        outputs[str(path.relative_to(out_dir))] = staged.sha256
    return outputs


def render_all(reg, version: str, **kwargs) -> list[RenderResult]:
    """Every episode that has this version; up-to-date ones skip, a failure does not stop the rest."""
    from reg.registry.errors import RegError

    results = []
    for key, ep in reg.catalog.episodes.items():
        if version not in ep.versions:
            continue
        try:
            results.append(render(reg, key, version, **kwargs))
        except RegError as exc:  # e.g. another process renders this one: note it, go on
            results.append(RenderResult(key, version, "skipped", None, None, error=str(exc)))
    return results


def effective_state(reg, episode: str, version: str, overrides: dict | None = None) -> str:
    overrides = RunRecords(reg.engine).version_states() if overrides is None else overrides
    return overrides.get((str(episode), version), reg.catalog.episodes[str(episode)].versions[version].state)


@dataclass
class Promotion:
    episode: str
    version: str
    action: str  # promote | rollback | unchanged
    changes: dict[str, str]  # version -> new state
    entry: dict  # the production-history line recorded


def promote(
    reg, episode: str, version: str, *, force: bool = False, note: str = "", action: str = "promote"
) -> Promotion:
    """Make a version production. The one in production so far becomes previous, except when it is
    the version that replaced `version` (going back): then it gets back the state it had before it
    was promoted, so a promote-and-back leaves every state as it was.

    Production must be earned here: a version with no successful run on this registry is refused
    unless `force` with a `note` saying why (a version that was production before needs neither)."""
    from reg.registry.errors import BlockedError, RegError

    ep = str(find_version(reg, episode, version).episode)
    records = RunRecords(reg.engine)
    overrides = records.version_states()
    before = {v: effective_state(reg, ep, v, overrides) for v in reg.catalog.episodes[ep].versions}
    current = [v for v, st in before.items() if st == "production" and v != version]
    if before[version] == "production" and not current:
        return Promotion(ep, version, "unchanged", {}, {})
    if force and not note:
        raise RegError("--force needs --note TEXT saying why; it is kept in the production history.")
    rendered = any(r.state == "succeeded" for r in records.runs(ep, version))
    if not rendered and before[version] != "previous" and not force:
        raise BlockedError(
            f"Episode {ep} {version} has no successful render on this registry ({reg.root}), so nothing "
            f"shows it works. Render it first (`reg render episode {ep} --version {version}`), or promote it "
            f'anyway with `reg promote episode {ep} {version} --force --note "why"` (the note is kept in '
            "the production history).",
            episode=ep,
            version=version,
        )
    history = records.production_history(ep)
    changes = {}
    for v in current:
        last: dict = next((h for h in reversed(history) if h["version"] == v), {})
        going_back = last.get("from") == version
        changes[v] = last["before"].get(v, "previous") if going_back else "previous"
    changes[version] = "production"
    entry = {
        "action": action,
        "version": version,
        "from": current[0] if current else None,
        "note": note or "",
        "forced": bool(force and not rendered),
        "before": {v: before[v] for v in changes},
    }
    records.record_production(ep, changes, entry)
    return Promotion(ep, version, action, changes, entry)


def rollback(reg, episode: str, note: str = "") -> Promotion:
    """Put back the version the last promotion replaced; the replacing one gets its earlier state."""
    from reg.registry.errors import RegError

    ep = reg.catalog.episode(str(episode))
    overrides = RunRecords(reg.engine).version_states()
    production = [v for v in ep.versions if effective_state(reg, ep.key, v, overrides) == "production"]
    history = RunRecords(reg.engine).production_history(ep.key)
    last = next(
        (h for h in reversed(history) if h["action"] == "promote" and h["version"] in production and h["from"]), None
    )
    if last is None:
        raise RegError(
            f"Episode {ep.key} has no promotion on this registry to roll back (`reg versions episode {ep.key}` "
            f"shows its history). Promote a version explicitly: `reg promote episode {ep.key} VERSION`."
        )
    return promote(reg, ep.key, last["from"], note=note, action="rollback")


def version_report(reg, episode: str) -> dict:
    """`reg versions`: each version's state and last run here, and the production history."""

    ep = reg.catalog.episode(str(episode))
    records = RunRecords(reg.engine)
    all_runs = records.runs(ep.key)
    overrides = records.version_states()
    rows = []
    for v in ep.versions.values():
        last = next((r for r in reversed(all_runs) if r.version == v.version), None)
        rows.append(
            {
                "version": v.version,
                "pipeline": v.pipeline,
                "state": effective_state(reg, ep.key, v.version, overrides),
                "last_run": last,
                "note": v.note,
            }
        )
    return {"episode": ep.key, "versions": rows, "history": records.production_history(ep.key)}
