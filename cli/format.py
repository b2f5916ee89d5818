"""Text rendering of reports for a person at a terminal (`--json` prints the data itself)."""

from __future__ import annotations

import shlex


def gate_reason(verdict) -> str:
    """Why the gate refuses, in one line: the files first (by state), then the environment."""
    files = [f"{b['asset']} ({b['state']})" for b in verdict.blockers if b["asset"]]
    parts = []
    if files:
        more = f" and {len(files) - 4} more" if len(files) > 4 else ""
        parts.append(f"{len(files)} input(s) not ready: {', '.join(files[:4])}{more}")
    if verdict.problems:
        parts.append(f"{len(verdict.problems)} environment problem(s)")
    return "; ".join(parts)


def format_result(r, verbose: bool = False) -> str:
    """One render's outcome. A refusal says why first, then what unblocks it; the resolved plan
    (commands, inputs with hashes) follows for a dry run (or -v), since that is what one asked for."""
    head = f"episode {r.episode} {r.version}"
    if r.state == "skipped":
        return f"{head}: skipped: {r.error}"
    lines = []
    if r.state in ("dry-run", "blocked"):
        v = r.verdict
        if v.ok:
            lines.append(f"{head}: gate: every input present and verified; ready to render")
        else:
            verb = "refused" if r.state == "blocked" else "would be refused"
            lines.append(f"{head}: {verb}: {gate_reason(v)}.")
        lines += [f"  warning: {w}" for w in v.warnings]
        if not v.ok:
            lines.append("To unblock:")
            for i, a in enumerate(v.actions, 1):
                lines += format_action(i, a, {})
        if r.state == "dry-run" or verbose:
            lines += _plan_lines(r)
        else:
            lines.append(f"(commands and inputs: reg render episode {r.episode} --version {r.version} --dry-run)")
        return "\n".join(lines)
    warn = [f"  warning: {w}" for w in (r.verdict.warnings if r.verdict else [])]
    if r.state == "up-to-date":
        return f"{head} is up to date: run {r.previous_run} used the same commands, parameters and input bytes (--force to render again)"
    if r.state == "succeeded":
        lines.append(f"{head}: run {r.run_id} succeeded; {len(r.outputs)} output file(s) stored")
        lines += [f"  {path}  {sha}" for path, sha in r.outputs.items()]
        return "\n".join(lines + warn)
    return f"{head}: run {r.run_id} {r.state}: {r.error}\n  full log: reg log {r.run_id}"


def _plan_lines(r) -> list[str]:
    lines = [f"plan ({r.plan.pipeline.name}, checkout {r.plan.steps[0].cwd}):"]
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
    return lines


def format_result_line(r) -> str:
    """`render --all`: one line per episode."""
    head = f"episode {r.episode} {r.version}: "
    if r.state in ("dry-run", "blocked"):
        verb = "ready" if r.verdict.ok else ("blocked" if r.state == "blocked" else "would be blocked")
        return head + verb + ("" if r.verdict.ok else f": {gate_reason(r.verdict)}")
    if r.state == "up-to-date":
        return head + f"up to date (run {r.previous_run})"
    if r.state == "succeeded":
        return head + f"succeeded (run {r.run_id}, {len(r.outputs)} output file(s))"
    if r.state == "skipped":
        return head + f"skipped: {r.error.splitlines()[0] if r.error else ''}"
    return head + f"{r.state} (run {r.run_id}; reg log {r.run_id})"


def format_summary(results) -> str:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.state] = counts.get(r.state, 0) + 1
    text = f"{len(results)} episode(s): " + ", ".join(f"{n} {state}" for state, n in counts.items())
    if counts.get("blocked") or counts.get("dry-run"):
        text += "; `reg render episode N --version V --dry-run` shows one in full, `reg status` what to do"
    return text


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
        f"{s['assets']} assets: {s['verified']} verified, {s['unchecked']} present, content unchecked, "
        f"{s['unverified']} unverified, {s['changed']} changed, "
        f"{s['missing']} missing; {s['ready']} of {s['versions']} episode versions ready",
        f"store: {s['store_objects']} object(s), {human_size(s['store_bytes'])}",
        "",
    ]
    blocked = [v for v in r["versions"] if not v["ready"]]
    if r.get("episode"):  # `status --episode N`: that episode's blockers lead
        out += _blocked_lines(blocked) or [f"Episode {r['episode']}: every version ready", ""]
    for title, key in (
        ("Owner actions (a person must do these)", "owner_actions"),
        ("Machine actions (no waiting on anyone)", "machine_actions"),
    ):
        if r[key]:
            out.append(f"{title}:")
            for i, a in enumerate(r[key], 1):
                out += format_action(i, a, states)
            out.append("")
    if not r.get("episode"):
        out += _blocked_lines(blocked)
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
        out.append(f"  {p['key']:16} {'ready' if p['ready'] else 'blocked':8} {pipeline_line(p)}")
    return "\n".join(out)


def _blocked_lines(blocked: list[dict]) -> list[str]:
    if not blocked:
        return []
    out = ["Blocked:"]
    for v in blocked:
        keys = ", ".join(b["asset"] or "its environment" for b in v["blockers"])
        out.append(f"  episode {v['episode']} {v['version']} ({v['pipeline']}, {v['state']}): {keys}")
    return out + [""]


def pipeline_line(p: dict) -> str:
    """What blocks a pipeline (its missing files first), then what is known of its environment."""
    files = [f"{b['asset']} ({b['state']})" for b in p["blockers"] if b["asset"]]
    shown = ", ".join(files[:4]) + (f" and {len(files) - 4} more" if len(files) > 4 else "")
    env = p["environment"]["last_check"]
    env_text = (
        f"environment not checked yet (reg env {p['key']})"
        if env is None
        else f"environment ok ({env['checked_at']})"
        if not env["problems"]
        else f"environment: {len(env['problems'])} problem(s) ({env['checked_at']}): {env['problems'][0]}"
    )
    return f"needs {shown}; {env_text}" if files else env_text


def source_line(src: dict, licence_name: str = "") -> str:
    """An asset's source as a person says it: "gated: FLAME licence, FLAME2023.zip"."""
    t = src["type"]
    if t == "gated":
        return f"gated: {(licence_name or src['licence']).split(' (')[0]} licence" + (
            f", {src['archive']}" if src["archive"] else ""
        )
    if t == "huggingface":
        rev = f" @ {src['revision']}" if src["revision"] not in ("", "main") else ""
        return f"huggingface: {src['repo']}/{src['file']}{rev}"
    if t == "url":
        return f"url: {src['url']}"
    if t == "owner":
        return f"owner provides: {src['hint']}"
    if t == "derived":
        how = f" by `{shlex.join(src['command'])}`" if src["command"] else ""
        return f"derived from {', '.join(src['inputs'])}{how}"
    return t


def _plain(v) -> str | None:
    """A value as text; None for nothing to say (None, empty)."""
    if v is None or v == "" or v == () or v == [] or v == {}:
        return None
    if isinstance(v, list | tuple):
        return ", ".join(str(x) for x in v)
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int) and not isinstance(v, bool) and v > 9999:
        return f"{v:,}"
    return str(v)


def format_show(data: dict) -> str:
    """`reg show`: labelled lines, commands as shell lines, nested records indented, nothing empty."""
    lines = []

    def emit(key, v, indent):
        pad = "  " * indent
        if key == "history":
            lines.append(f"{pad}history:" + ("" if v else " none yet"))
            for e in v or []:
                lines.append(f"{pad}  {e['at']}  {e['event']}  {e['detail']}".rstrip())
        elif key == "commands" and isinstance(v, list):
            lines.append(f"{pad}commands:")
            for c in v:
                env = " ".join(f"{k}={shlex.quote(str(x))}" for k, x in (c.get("env") or {}).items())
                lines.append(f"{pad}  [{c['step']}] (cd {shlex.quote(c['cwd'])} && {shlex.join(c['argv'])})")
                if env:
                    lines.append(f"{pad}    env: {env}")
        elif isinstance(v, dict):
            if not v:
                return
            lines.append(f"{pad}{key}:")
            for kk, vv in v.items():
                emit(kk, vv, indent + 1)
        elif (text := _plain(v)) is not None:
            lines.append(f"{pad}{key}: {text}")

    for k, v in data.items():
        emit(k, v, 0)
    return "\n".join(lines)


def human_size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return "-"


def format_ls(rows: list[dict]) -> str:
    if not rows:
        return "no assets match"
    out = [f"{'KEY':26} {'STATE':10} {'KIND':10} {'SIZE':>10}  SOURCE"]
    for r in rows:
        extra = f" (licence {r['licence']})" if r["licence"] else ""
        out.append(f"{r['key']:26} {r['state']:10} {r['kind']:10} {human_size(r['size']):>10}  {r['source']}{extra}")
    return "\n".join(out)
