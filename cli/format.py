"""Text rendering of reports for a person at a terminal (`--json` prints the data itself)."""

from __future__ import annotations

import shlex


def format_result(r) -> str:
    """One render's outcome; for a dry run or a refusal, the plan and the gate's verdict."""
    head = f"episode {r.episode} {r.version}"
    if r.state == "skipped":
        return f"{head}: skipped: {r.error}"
    lines = []
    if r.state in ("dry-run", "blocked"):
        lines.append(f"{head} ({r.plan.pipeline.name}, checkout {r.plan.steps[0].cwd})")
        for s in r.plan.steps:
            lines.append(f"  step {s.name}:  {shlex.join(s.argv)}")
            if s.outputs:
                lines.append(f"    writes {', '.join(s.outputs)}")
        lines.append("  inputs:")
        states = {b["asset"]: b["state"] for b in r.verdict.blockers}
        for k, sha in r.verdict.inputs.items():
            lines.append(f"    {k:26} {sha or states.get(k, '?')}")
        for problem in r.verdict.problems:
            lines.append(f"  environment: {problem}")
        if r.verdict.ok:
            lines.append("  gate: every input present and verified; ready to render")
        else:
            verb = "refused" if r.state == "blocked" else "would refuse"
            lines.append(
                f"  gate: {verb}; {len(r.verdict.blockers)} input(s) not verified, "
                f"{len(r.verdict.problems)} environment problem(s)." + (" To unblock:" if r.verdict.actions else "")
            )
            for i, a in enumerate(r.verdict.actions, 1):
                lines += format_action(i, a, {})
        return "\n".join(lines)
    if r.state == "up-to-date":
        return f"{head} is up to date: run {r.previous_run} used the same commands, parameters and input bytes (--force to render again)"
    if r.state == "succeeded":
        lines.append(f"{head}: run {r.run_id} succeeded; {len(r.outputs)} output file(s) stored")
        lines += [f"  {path}  {sha}" for path, sha in r.outputs.items()]
        return "\n".join(lines)
    return f"{head}: run {r.run_id} {r.state}: {r.error}\n  full log: reg log {r.run_id}"


def format_summary(results) -> str:
    rows = [f"{'episode':>8}  {'state':11} {'run':>5}  note"]
    for r in results:
        note = r.error.splitlines()[0] if r.error else ""
        rows.append(f"{r.episode:>8}  {r.state:11} {str(r.run_id or r.previous_run or '-'):>5}  {note}")
    return "\n".join(rows)


def unblocks_phrase(unblocks: list[dict], states: dict) -> str:
    by_version: dict[str, list[str]] = {}
    for u in unblocks:
        by_version.setdefault(u["version"], []).append(u["episode"])
    parts = []
    for version, episodes in by_version.items():
        lead = min(
            episodes,
            key=lambda e: (states.get((e, version)) not in ("candidate", "production"), int(e) if e.isdigit() else e),
        )
        rest = len(episodes) - 1
        parts.append(
            f"episode {lead} {version}" + (f" and the {rest} other {version} render{'s' * (rest > 1)}" if rest else "")
        )
    return "; ".join(parts)


def format_action(i: int, a: dict, states: dict) -> list[str]:
    lines = [f" {i}. {a['title']}"]
    lines += [f"      - {s}" for s in a["steps"]]
    shown, more = a["commands"][:4], len(a["commands"]) - 4
    if shown:
        lines.append(
            "      then: "
            + "\n            ".join(shown + ([f"... {more} more (reg status --json lists them)"] if more > 0 else []))
        )
    files = a["assets"][:6] + ([f"... {len(a['assets']) - 6} more"] if len(a["assets"]) > 6 else [])
    if files:
        lines.append(f"      files: {', '.join(files)}")
    targets = []
    if a["unblocks"]:
        targets.append(unblocks_phrase(a["unblocks"], states))
    if a["pipelines"]:
        targets.append("pipeline " + ", ".join(a["pipelines"]))
    if targets:
        lines.append(f"      -> unblocks {'; '.join(targets)}")
    return lines


def format_status(r: dict) -> str:
    s = r["summary"]
    states = {(v["episode"], v["version"]): v["state"] for v in r["versions"]}
    out = [
        f"registry {r['root']}",
        f"{s['assets']} assets: {s['verified']} verified, {s['unverified']} unverified, {s['changed']} changed, "
        f"{s['missing']} missing; {s['ready']} of {s['versions']} episode versions ready",
        "",
    ]
    for title, key in (
        ("Owner actions (a person must do these)", "owner_actions"),
        ("Machine actions (no waiting on anyone)", "machine_actions"),
    ):
        if r[key]:
            out.append(f"{title}:")
            for i, a in enumerate(r[key], 1):
                out += format_action(i, a, states)
            out.append("")
    blocked = [v for v in r["versions"] if not v["ready"]]
    if blocked:
        out.append("Blocked:")
        for v in blocked:
            keys = ", ".join(b["asset"] or "its environment" for b in v["blockers"])
            out.append(f"  episode {v['episode']} {v['version']} ({v['pipeline']}, {v['state']}): {keys}")
        out.append("")
    ready = [v for v in r["versions"] if v["ready"]]
    out.append("Ready: " + (", ".join(f"episode {v['episode']} {v['version']}" for v in ready) or "none"))
    for v in r["production"]:
        note = (
            "inputs verified"
            if v["ready"]
            else f"re-render blocked by {', '.join(b['asset'] or 'its environment' for b in v['blockers'])}"
        )
        out.append(f"In production: episode {v['episode']} {v['version']} ({v['pipeline']}; {note})")
    out.append("Pipelines:")
    for p in r["pipelines"]:
        env = p["environment"]["last_check"]
        env_text = (
            "environment not checked yet (reg env " + p["key"] + ")"
            if env is None
            else f"environment ok ({env['checked_at']})"
            if not env["problems"]
            else f"environment: {len(env['problems'])} problem(s) ({env['checked_at']})"
        )
        out.append(f"  {p['key']:16} {'ready' if p['ready'] else 'blocked':8} {env_text}")
    return "\n".join(out)
