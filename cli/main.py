"""`reg` command line: parse, call one registry function, format text or JSON. No business logic.

Exit codes (README, "Exit codes"): 0 ok, 1 a user-facing error (one paragraph, no traceback),
2 bad usage, 3 blocked (`status --strict`; later the render gate).
Imports of SQLAlchemy, Alembic and tqdm happen inside commands, so `reg --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from functools import wraps
from pathlib import Path

import click

from reg.registry.errors import BlockedError, RegError, RenderFailedError, VerifyFailedError

from .format import (
    format_ls,
    format_result,
    format_result_line,
    format_show,
    format_status,
    format_summary,
    human_size,
    source_line,
)


def _emit_json(data) -> None:
    # Indented for a person at a terminal; compact (and ~5x faster: C encoder) for programs.
    indent = 2 if sys.stdout.isatty() else None
    click.echo(json.dumps(data, indent=indent, default=str))


def handles_errors(fn):
    """Turn a RegError into one paragraph on stderr (or a JSON object with --json) and its exit code."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                raise _not_writable(exc) or exc from None
        except RegError as exc:
            if kwargs.get("as_json") and not getattr(exc, "after_output", False):
                _emit_json(exc.to_json())
            else:
                click.echo(f"error: {exc}", err=True)  # one paragraph; the terminal wraps it
            sys.exit(exc.exit_code)

    return wrapper


def _not_writable(exc: Exception) -> RegError | None:
    """A write refused by the file system or a read-only database, in the user's terms (no traceback).
    Reading commands work on someone else's registry; changing it needs its owner."""
    from reg.registry.errors import NotWritableError

    if isinstance(exc, PermissionError):
        where = exc.filename or "a file of the registry"
        return NotWritableError(
            f"Permission denied writing {where}. This registry (or that path) belongs to someone else: ask its "
            "owner for write access, or use a registry of your own with --root DIR or REG_HOME.",
            path=exc.filename,
        )
    if "readonly database" in str(exc) or "read-only database" in str(exc):
        return NotWritableError(
            "This registry's database is read-only for you (owned by someone else). Reading commands "
            "(status, ls, show, verify) work; to change it ask its owner, or use a registry of your own "
            "with --root DIR or REG_HOME."
        )
    return None


def _fail_after_output(exc: RegError) -> RegError:
    """An error raised once the report is printed: --json output stays one document (the message goes to stderr)."""
    exc.after_output = True  # type: ignore[attr-defined]
    return exc


def _quiet() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and (ctx.find_root().obj or {}).get("quiet"))


def _say(ctx, text: str) -> None:
    """Informational lines, silenced by -q (data and errors are always printed)."""
    if not (ctx.find_root().obj or {}).get("quiet"):
        click.echo(text)


def _completion_registry(ctx):
    from reg.registry.root import Registry, find_root

    return Registry(find_root(ctx.find_root().params.get("root")))


def _complete_keys(ctx, param, incomplete: str):
    """Shell completion of asset keys (and licence keys) from the catalog; silent on any error."""
    try:
        catalog = _completion_registry(ctx).catalog
        return sorted(k for k in [*catalog.assets, *catalog.licences] if k.startswith(incomplete))
    except Exception:
        return []


def _complete_episodes(ctx, param, incomplete: str):
    try:
        return sorted((k for k in _completion_registry(ctx).catalog.episodes if k.startswith(incomplete)), key=len)
    except Exception:
        return []


def _emit_results(results, as_json: bool) -> None:
    """What add, fetch and derive registered."""
    if as_json:
        _emit_json([r.__dict__ for r in results])
        return
    if _quiet():  # the data only: key, sha256, where it is
        for r in results:
            click.echo(f"{r.key} {r.sha256} {r.path}")
        return
    for r in results:
        stored = "stored" if r.newly_stored else "already in the store"
        click.echo(
            f"{r.key}: {r.summary}\n  sha256 {r.sha256} ({r.size} bytes, {stored}) from {r.source}\n"
            f"  placed at {r.path} ({r.link_mode})"
        )


def _registry(ctx):
    from reg.registry.root import Registry, find_root

    return Registry(find_root(ctx.obj.get("root")))


def _run_records(reg):
    from reg.runner.records import RunRecords

    return RunRecords(reg.engine)


def _progress_factory(as_json: bool):
    """tqdm bars on a terminal; nothing with --json, -q, or when stderr is not a TTY."""
    if as_json or not sys.stderr.isatty() or _quiet():
        from reg.registry.ingest import null_progress

        return null_progress
    from tqdm import tqdm

    return lambda total, desc: tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=False)


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="reg", message="reg %(version)s")
@click.option("--root", envvar=None, help="Registry root (default: $REG_HOME, nearest .reg/, per-user data dir).")
@click.option("-q", "--quiet", is_flag=True, help="Print only data, problems and errors.")
@click.option("-v", "--verbose", is_flag=True, help="Print more detail (e.g. every episode of `render --all`).")
@click.pass_context
def cli(ctx, root, quiet, verbose):
    """reg: asset and model registry for talking-head render pipelines."""
    ctx.ensure_object(dict)
    ctx.obj.update(root=root, quiet=quiet, verbose=verbose and not quiet)


@cli.command()
@json_option
@handles_errors
def init(as_json):
    """Make a .reg/ registry in the current directory."""
    from reg.registry.root import Registry, init_root

    reg = Registry(init_root(Path.cwd()))
    _ = reg.engine  # creates and migrates the database
    _emit_json({"root": str(reg.root)}) if as_json else click.echo(f"Initialised registry in {reg.root}")


@cli.command()
@json_option
@click.option("--strict", is_flag=True, help="Exit 3 when any episode version or pipeline is blocked.")
@click.option("--episode", shell_complete=_complete_episodes, help="Only this episode: its blockers and actions first.")
@click.pass_context
@handles_errors
def status(ctx, as_json, strict, episode):
    """What is blocked, by what, and the action that unblocks it."""
    from reg.registry.status import build_status

    reg = _registry(ctx)
    report = build_status(reg, _run_records(reg).version_states(), episode)
    _emit_json(report) if as_json else click.echo(format_status(report))
    if strict and (report["summary"]["blocked"] or any(not p["ready"] for p in report["pipelines"])):
        raise _fail_after_output(
            BlockedError(f"{report['summary']['blocked']} episode version(s) blocked (--strict); see the report above.")
        )


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--as",
    "as_key",
    metavar="KEY",
    shell_complete=_complete_keys,
    help="The catalog key this file is (when its name is ambiguous).",
)
@click.option("--sha256", metavar="HEX", help="Refuse the file unless it has this sha256.")
@click.option("--replace", is_flag=True, help="Accept a different file than the one registered or placed.")
@click.option(
    "--link",
    type=click.Choice(["symlink", "hardlink", "copy"]),
    default="copy",
    show_default=True,
    help="How to put the stored object at the pipeline path.",
)
@json_option
@click.pass_context
@handles_errors
def add(ctx, files, as_key, sha256, replace, link, as_json):
    """Identify FILE (or an archive's catalogued files), verify, store and place it; several FILEs or a DIR at once.

    One FILE prints its results (a JSON list). Several, or a folder (its files whose names are
    catalogued), are added on every core, going on past failures, then summarised (JSON:
    {"added": [...], "failed": [{"file", "error", "message", ...}]}); exit 1 if any failed."""
    from reg.registry.add import add_file, add_many

    reg = _registry(ctx)
    if len(files) == 1 and not files[0].is_dir():
        _emit_results(add_file(reg, files[0], as_key, sha256, replace, link, _progress_factory(as_json)), as_json)
        return
    if as_key or sha256:
        raise click.UsageError("--as and --sha256 name one file: add that file on its own")
    results, failed = add_many(reg, list(files), replace, link, _progress_factory(as_json))
    if as_json:
        _emit_json(
            {
                "added": [r.__dict__ for r in results],
                "failed": [{"file": str(f), **e.to_json()} for f, e in failed],
            }
        )
    else:
        _emit_results(results, False)
        for _, e in failed:
            click.echo(f"error: {e}", err=True)
        if not _quiet():
            click.echo(f"added {len(results)}, failed {len(failed)}")
    if failed:
        raise _fail_after_output(
            RegError(f"{len(failed)} of {len(failed) + len(results)} file(s) were not added (see above).")
        )


@cli.command()
@click.argument("keys", nargs=-1)
@click.option(
    "--missing", is_flag=True, help="Everything fetchable that is not verified (scope with the options below)."
)
@click.option("--episode", help="With --missing: only what this episode needs.")
@click.option("--version", "version", help="With --missing --episode: only this version.")
@click.option("--pipeline", help="With --missing: only what this pipeline needs.")
@click.option("--offline", is_flag=True, help="Never touch the network (also: HF_HUB_OFFLINE=1).")
@click.option("--restart", is_flag=True, help="Discard these keys' partial downloads first; download from the start.")
@click.option("--link", type=click.Choice(["symlink", "hardlink", "copy"]), default="copy", show_default=True)
@json_option
@click.pass_context
@handles_errors
def fetch(ctx, keys, missing, episode, version, pipeline, offline, restart, link, as_json):
    """Download open weights (Hugging Face, URLs), verified, resumable; then store and place them.

    Goes on past a file it cannot get, then prints one summary; exits 1 if any failed."""
    from reg.registry.fetch import fetch as run_fetch
    from reg.registry.fetch import missing_keys

    reg = _registry(ctx)
    if missing:
        keys = tuple(keys) + tuple(missing_keys(reg, episode, version, pipeline))
    elif not keys:
        raise click.UsageError("name the assets to fetch, or pass --missing")
    if not keys:
        if as_json:
            _emit_json({"fetched": [], "present": [], "failed": []})
        else:
            click.echo("Nothing to fetch: every downloadable input is verified.")
        return
    progress = _progress_factory(as_json)
    report = run_fetch(reg, list(dict.fromkeys(keys)), offline, link, progress, quiet=as_json, restart=restart)
    _emit_fetch_report(report, as_json)
    if report.failed:
        sys.exit(1)


def _emit_fetch_report(report, as_json: bool) -> None:
    """Every key's outcome: fetched, already there, or failed with its one-paragraph reason (stderr)."""
    if as_json:
        failed = [{"key": e.fields["key"], **e.to_json()} for e in report.failed]
        _emit_json(
            {
                "fetched": [r.__dict__ for r in report.fetched],
                "present": [r.__dict__ for r in report.present],
                "failed": [{k: v for k, v in f.items() if k != "exit_code"} for f in failed],
            }
        )
        return
    _emit_results(report.fetched + report.present, False)
    for e in report.failed:
        click.echo(f"error: {e}", err=True)
    names = ", ".join(e.fields["key"] for e in report.failed)
    if _quiet():
        return
    click.echo(
        f"fetched {len(report.fetched)}, already there {len(report.present)}, failed {len(report.failed)}"
        + (f" ({names}; reasons above)" if names else "")
    )


@cli.command()
@click.argument("key", shell_complete=_complete_keys)
@click.option("--replace", is_flag=True, help="Accept a result that differs from the file registered before.")
@click.option("--link", type=click.Choice(["symlink", "hardlink", "copy"]), default="copy", show_default=True)
@json_option
@click.pass_context
@handles_errors
def derive(ctx, key, replace, link, as_json):
    """Make a derived asset (e.g. a fixed file) by running its command on its verified inputs."""
    from reg.runner.derive import derive as run_derive

    _emit_results(run_derive(_registry(ctx), key, replace, link, _progress_factory(as_json)), as_json)


@cli.command()
@click.argument("keys", nargs=-1, shell_complete=_complete_keys)
@click.option("--full", is_flag=True, help="Rehash every file, not only those whose stat changed.")
@click.option("--store", "store", is_flag=True, help="Check the store itself: every object against its name (fsck).")
@json_option
@click.pass_context
@handles_errors
def verify(ctx, keys, full, store, as_json):
    """Check that every placed file is still the verified one."""
    from reg.registry.verify import check_store
    from reg.registry.verify import verify as run_verify

    if store:
        problems = check_store(_registry(ctx), _progress_factory(as_json))
        if as_json:
            _emit_json([p.__dict__ for p in problems])
        else:
            for p in problems:
                click.echo(f"{'repaired' if p.repaired else p.problem:10} {p.sha256}  {p.detail}")
            click.echo("store ok" if not problems else f"{len(problems)} problem(s)")
        if any(not p.repaired and p.problem != "unrecorded" for p in problems):
            raise VerifyFailedError(
                "The store has objects that are corrupt or missing and could not be repaired (listed above)."
            )
        return
    results = run_verify(_registry(ctx), list(keys), full, _progress_factory(as_json))
    bad = [r for r in results if r.state != "verified"]
    if as_json:
        _emit_json([r.__dict__ for r in results])
    else:
        for r in results:
            if r.state == "verified" and not r.rehashed and ctx.obj.get("quiet"):
                continue
            how = "" if r.state == "missing" else " (rehashed)" if r.rehashed else " (stat unchanged)"
            click.echo(f"{r.state:9} {r.key}{how}  {r.detail}".rstrip())
        _say(ctx, f"{len(results) - len(bad)} verified, {len(bad)} not" if results else "nothing registered yet")
    if bad:
        raise _fail_after_output(
            VerifyFailedError(
                f"{len(bad)} placed file(s) changed or missing: {', '.join(r.key for r in bad)}. Restore them, or "
                "re-add them (`reg add FILE --replace`); `reg status` lists the actions."
            )
        )


@cli.command(name="env")
@click.argument("pipelines", nargs=-1)
@json_option
@click.pass_context
@handles_errors
def check_env(ctx, pipelines, as_json):
    """Check pipelines' environments: checkout, venv, declared packages and binaries (all by default)."""
    from reg.runner.gate import environment

    reg = _registry(ctx)
    for key in pipelines:
        reg.catalog.pipeline(key)
    report = {}
    for key in pipelines or reg.catalog.pipelines:
        problems, facts = environment(reg, reg.catalog.pipelines[key])
        report[key] = {
            "ok": not problems,
            "problems": problems,
            "python": facts.get("python"),
            "executable": facts.get("executable"),
            "gpus": facts.get("gpus", []),
        }
    if as_json:
        _emit_json(report)
    else:
        for key, r in report.items():
            where = f"python {r['python']} at {r['executable']}" if r["executable"] else "no interpreter"
            click.echo(f"{key}: {'ok' if r['ok'] else 'not ready'} ({where})")
            for problem in r["problems"]:
                click.echo(f"  - {problem}")
    if any(not r["ok"] for r in report.values()):
        bad = [k for k, r in report.items() if not r["ok"]]
        raise _fail_after_output(BlockedError(f"Not ready: {', '.join(bad)} (problems listed above)."))


@cli.command(name="ls")
@click.option("--missing", is_flag=True, help="Only assets not verified yet.")
@click.option("--pipeline", metavar="P", help="Only this pipeline's assets.")
@click.option(
    "--state",
    type=click.Choice(["verified", "unchecked", "unverified", "changed", "missing"]),
    help="Only assets in this state.",
)
@json_option
@click.pass_context
@handles_errors
def list_assets(ctx, missing, pipeline, state, as_json):
    """List catalogued assets with state, size, source and licence."""
    from reg.registry.listing import asset_rows

    rows = asset_rows(_registry(ctx), missing, pipeline, state)
    if as_json:
        _emit_json(rows)
        return
    click.echo(format_ls(rows))


@cli.command()
@click.argument("key", shell_complete=_complete_keys)
@click.argument("run_id", required=False, type=int)
@json_option
@click.pass_context
@handles_errors
def show(ctx, key, run_id, as_json):
    """One asset's (or licence's) whole record and history; `show run ID` for a render."""
    from reg.registry.status import asset_states

    reg = _registry(ctx)
    if key == "run":
        if run_id is None:
            raise click.UsageError("say `reg show run ID` (`reg runs` lists them)")
        run = _run(reg, run_id)
        data = {
            **_run_summary(run),
            "run_dir": run.run_dir,
            "fingerprint": run.fingerprint,
            "host": run.host,
            "pid": run.pid,
            "error": run.error,
            "inputs": json.loads(run.inputs),
            "commands": json.loads(run.commands),
            "environment": json.loads(run.environment),
            "outputs": json.loads(run.outputs),
        }
    elif key in reg.catalog.licences:
        lic = reg.catalog.licences[key]
        rec = reg.state.licences().get(key)
        data = {
            "licence": _fields(lic),
            "state": rec.state if rec else "not-requested",
            "note": rec.note if rec else "",
            "history": [_event(e) for e in reg.state.events(f"licence:{key}")],
        }
    else:
        asset = reg.catalog.asset(key)
        rec = reg.state.asset_records().get(key)
        data = {
            "asset": _fields(asset),
            "source": _fields(asset.source),
            **asset_states(reg)[key],
            "record": {
                c: getattr(rec, c)
                for c in (
                    "sha256",
                    "placed_path",
                    "link_mode",
                    "state",
                    "fp_size",
                    "fp_mtime_ns",
                    "fp_inode",
                    "verified_at",
                )
            }
            if rec
            else None,
            "store_object": str(reg.store.object_path(rec.sha256)) if rec else None,
            "history": [_event(e) for e in reg.state.events(key)],
        }
    if as_json:
        _emit_json(data)
        return
    if isinstance(data.get("environment"), dict) and "packages" in data["environment"]:
        env = data["environment"]
        data["environment"] = {**env, "packages": f"{len(env['packages'])} packages (--json lists them)"}
    if "asset" in data:  # text: the source as one line, the record's fields without their prefixes
        asset = data.pop("asset")
        lic = reg.catalog.licences.get(asset["source"]["licence"])
        asset.pop("manifest")
        data = {
            "asset": asset.pop("key"),
            **asset,
            "source": source_line(data.pop("source"), lic.name if lic else ""),
            **{k: v for k, v in data.items() if k != "record"},
            **{k: (data.get("record") or {}).get(k) for k in ("link_mode", "verified_at")},
        }
    click.echo(format_show(data))


def _fields(obj) -> dict:
    from dataclasses import asdict

    return asdict(obj)


def _event(e) -> dict:
    return {"at": e.at.isoformat(timespec="seconds"), "event": e.event, "sha256": e.sha256, "detail": e.detail}


@cli.command(name="license")
@click.argument("key", shell_complete=_complete_keys)
@click.argument("state", type=click.Choice(["not-requested", "requested", "approved", "rejected"]))
@click.option("--note", help="Free text, e.g. 'form sent', 'approval mail 2026-11-20'.")
@json_option
@click.pass_context
@handles_errors
def licence(ctx, key, state, note, as_json):
    """Record where you stand with a gated licence (KEY: licence or gated asset)."""

    reg = _registry(ctx)
    lic = reg.catalog.licence_for(key)
    rec = reg.state.set_licence(lic.key, state, note)
    out = {"licence": lic.key, "state": rec.state, "note": rec.note}
    _emit_json(out) if as_json else click.echo(f"{lic.name}: {rec.state}" + (f" ({rec.note})" if rec.note else ""))


@cli.command()
@click.argument("key", required=False)
@click.argument("value", required=False)
@click.option("--list", "list_all", is_flag=True, help="Every setting of this machine.")
@click.option("--unset", is_flag=True, help="Remove the setting (back to the manifest's default).")
@json_option
@click.pass_context
@handles_errors
def config(ctx, key, value, list_all, unset, as_json):
    """Read, set, unset or list this machine's settings, e.g. `reg config pipelines.cap4d.root ~/src/cap4d`.

    Settings are per machine (keyed by its machine id), so machines sharing a team database keep
    their own checkout paths."""
    reg = _registry(ctx)
    if list_all or key is None:
        settings = dict(sorted(reg.settings.items()))
        lines = [f"{k} = {v}" for k, v in settings.items()] or ["no settings on this machine (manifest defaults apply)"]
        _emit_json(settings) if as_json else click.echo("\n".join(lines))
        return
    parts = key.split(".")
    is_path = key in ("media.root", "caches.torch_home", "caches.hf_home") or (
        len(parts) == 3 and parts[0] == "pipelines" and parts[2] == "root"
    )
    if not (is_path or (parts[0] == "mirrors" and len(parts) > 1)):
        raise RegError(
            f"Unknown setting '{key}'. Settings are pipelines.<pipeline>.root, media.root, "
            "caches.torch_home and caches.hf_home (where torch.hub and Hugging Face files are placed) and "
            "mirrors.<host> (a base URL that serves that host's files).",
            key=key,
        )
    if is_path and len(parts) == 3:
        reg.catalog.pipeline(parts[1])
    if unset:
        reg.state.unset_setting(key)
    elif value is not None:
        path = Path(value).expanduser().resolve()
        reg.state.set_setting(key, str(path) if is_path else value)
        if is_path and not path.is_dir():
            # Allowed (a checkout may be cloned later), but said, so a typo does not go unnoticed.
            click.echo(f"note: {path} does not exist yet; clone or create it there.", err=True)
    current = reg.state.settings().get(key)
    _emit_json({"key": key, "value": current}) if as_json else click.echo(f"{key} = {current or '(manifest default)'}")


# --- renders ------------------------------------------------------------------------------


@cli.command()
@click.argument("target", nargs=-1)
@click.option("--version", "version", required=True, help="The episode version to render, e.g. v8.")
@click.option("--all", "all_episodes", is_flag=True, help="Every episode that has this version.")
@click.option("--dry-run", is_flag=True, help="Show the resolved plan and the gate's verdict; run nothing.")
@click.option("--force", is_flag=True, help="Render even if an identical render already succeeded.")
@click.option(
    "--timeout", type=float, metavar="SECONDS", help="Stop the render (its whole process group) after this long."
)
@json_option
@click.pass_context
@handles_errors
def render(ctx, target, version, all_episodes, dry_run, force, timeout, as_json):
    """Render `episode N --version V` (or `--all --version V`) once every input is verified."""
    import gc

    gc.enable()  # a render can run for hours (see main())
    from reg.runner.render import render as run_render
    from reg.runner.render import render_all

    reg = _registry(ctx)
    if all_episodes == bool(target):
        raise click.UsageError("say `reg render episode N --version V` or `reg render --all --version V`")
    if target and (len(target) != 2 or target[0] != "episode"):
        raise click.UsageError("the target is `episode N`, e.g. `reg render episode 11 --version v8`")
    on_event, on_line, close = _render_output(as_json, dry_run)
    kwargs = {"dry_run": dry_run, "force": force, "timeout": timeout, "on_event": on_event, "on_line": on_line}
    try:
        results = (
            render_all(reg, version, **kwargs) if all_episodes else [run_render(reg, target[1], version, **kwargs)]
        )
    finally:
        close()
    verbose = ctx.obj.get("verbose")
    for r in results:
        if as_json:
            _emit_jsonl({"event": "result", **_result_json(r)})
        else:
            click.echo(format_result_line(r) if all_episodes and not verbose else format_result(r, verbose))
    if all_episodes and not as_json:
        click.echo(format_summary(results))
    states = {r.state for r in results}
    if states & {"failed", "timed-out", "cancelled", "skipped"}:
        failed = [r for r in results if r.state in ("failed", "timed-out", "cancelled", "skipped")]
        raise _fail_after_output(
            RenderFailedError(f"{len(failed)} of {len(results)} render(s) of {version} did not succeed (see above).")
        )
    if "blocked" in states or (dry_run and any(r.verdict and not r.verdict.ok for r in results)):
        blocked = [r for r in results if r.verdict and not r.verdict.ok]
        raise _fail_after_output(
            BlockedError(
                f"{len(blocked)} of {len(results)} render(s) of {version} blocked; nothing was launched for them."
            )
        )


def _emit_jsonl(event: dict) -> None:
    click.echo(json.dumps(event, default=str))


def _render_output(as_json: bool, dry_run: bool):
    """Event and line sinks: JSON lines, or the pipeline's own output plus a progress bar on a terminal."""
    if as_json:
        return _emit_jsonl, (lambda line: None), (lambda: None)
    bar: dict = {}
    tty = sys.stderr.isatty() and not dry_run

    def on_event(e):
        if not tty or e["event"] not in ("step", "frames", "end"):
            return
        from tqdm import tqdm

        if e["event"] == "step":
            bar.setdefault("bar", tqdm(total=e["total"], unit="step", leave=False))
            if e["index"]:
                bar["bar"].update(1)
            bar["bar"].set_description(e["step"])
        elif e["event"] == "frames" and "bar" in bar:
            bar["bar"].set_postfix_str(f"frame {e['done']}/{e['total']}")

    def on_line(line: bytes):
        text = line.decode(errors="replace").rstrip("\n")
        if "bar" in bar:
            bar["bar"].write(text)
        else:
            click.echo(text)

    def close():
        if "bar" in bar:
            bar["bar"].close()

    return on_event, on_line, close


def _result_json(r) -> dict:
    out = {
        "episode": r.episode,
        "version": r.version,
        "state": r.state,
        "run": r.run_id,
        "error": r.error,
        "previous_run": r.previous_run,
        "outputs": r.outputs,
    }
    if r.verdict is not None:
        out.update(
            inputs=r.verdict.inputs, blockers=r.verdict.blockers, actions=r.verdict.actions, problems=r.verdict.problems
        )
    if r.plan is not None:
        out["steps"] = [
            {"name": s.name, "argv": s.argv, "cwd": s.cwd, "env": s.env, "reads": s.reads, "outputs": s.outputs}
            for s in r.plan.steps
        ]
    return out


@cli.command()
@click.option("--episode", shell_complete=_complete_episodes, help="Only this episode's runs.")
@json_option
@click.pass_context
@handles_errors
def runs(ctx, episode, as_json):
    """Every recorded render: state, times, exit code (vanished ones are marked lost)."""
    from reg.runner.render import holder_alive

    reg = _registry(ctx)
    _run_records(reg).mark_lost(holder_alive)
    rows = [_run_summary(r) for r in _run_records(reg).runs(episode)]
    if as_json:
        _emit_json(rows)
        return
    for r in rows:
        click.echo(
            f"{r['id']:>5}  episode {r['episode']} {r['version']:5} {r['state']:10} {r['started_at']}  "
            f"exit {r['exit_code']}"
        )
    if not rows:
        click.echo("no runs recorded")


def _run_summary(r) -> dict:
    return {
        "id": r.id,
        "episode": r.episode,
        "version": r.version,
        "pipeline": r.pipeline,
        "state": r.state,
        "exit_code": r.exit_code,
        "started_at": r.started_at.isoformat(timespec="seconds"),
        "ended_at": r.ended_at.isoformat(timespec="seconds") if r.ended_at else None,
    }


def _run(reg, run_id: int):

    run = _run_records(reg).get_run(run_id)
    if run is None:
        raise RegError(f"No run {run_id}. `reg runs` lists the recorded runs.")
    return run


@cli.command()
@click.argument("run_id", type=int)
@click.option("--follow", "-f", is_flag=True, help="Keep printing as the running render writes.")
@json_option
@click.pass_context
@handles_errors
def log(ctx, run_id, follow, as_json):
    """Print a run's log (its steps' combined output)."""
    import time

    reg = _registry(ctx)
    run = _run(reg, run_id)
    path = Path(run.run_dir) / "log.txt"
    if not path.exists():
        raise RegError(f"Run {run_id} has no log at {path} (it never started a step, or the run folder was removed).")
    if as_json:
        text = path.read_text(errors="replace")
        _emit_json({"run": run_id, "state": run.state, "path": str(path), "log": text})
        return
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 16)
            if chunk:
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
                continue
            if not follow or _run_records(reg).get_run(run_id).state != "running":
                break
            time.sleep(0.2)


@cli.command(short_help="Forget an asset and take it off its pipeline path.")
@click.argument("key", shell_complete=_complete_keys)
@json_option
@click.pass_context
@handles_errors
def rm(ctx, key, as_json):
    """Take KEY off its pipeline path and forget it here; its store object stays until `reg gc`."""
    from reg.registry.remove import remove

    r = remove(_registry(ctx), key)
    if as_json:
        _emit_json(r)
        return
    where = f"removed {r['path']}" if r["unplaced"] else f"left {r['path']} (not reg's placement)"
    click.echo(f"{r['key']}: forgotten; {where}; the object stays in the store until `reg gc`")


@cli.command(short_help="Delete store objects nothing refers to (--dry-run first).")
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted, with sizes.")
@json_option
@click.pass_context
@handles_errors
def gc(ctx, dry_run, as_json):
    """Delete store objects no placement, catalog pin or run refers to (e.g. files displaced by --replace)."""
    from reg.registry.gc import collect

    reg = _registry(ctx)
    report = collect(reg, _run_records(reg).referenced_objects(), dry_run)
    if as_json:
        _emit_json(report)
        return
    for o in report["objects"]:
        click.echo(f"{human_size(o['size']):>10}  {o['sha256']}")
    for path in report["scratch"]:
        click.echo(f"{'scratch':>10}  {path}")
    verb = "would free" if dry_run else "freed"
    click.echo(
        f"{len(report['objects'])} unreferenced object(s), {len(report['scratch'])} stale stage(s); "
        f"{verb} {human_size(report['bytes'])}"
    )


@cli.command(short_help="Set up the demo pipeline (no GPU needed) in this registry.")
@json_option
@click.pass_context
@handles_errors
def demo(ctx, as_json):
    """Copy the demo pipeline and its episode 100 into this registry, to try the runner without a GPU."""
    from reg.runner.demo import setup_demo

    reg = _registry(ctx)
    _ = reg.engine  # creates the registry when it is new
    r = setup_demo(reg)
    if as_json:
        _emit_json(r)
        return
    click.echo(f"Demo pipeline in {r['checkout']} (manifest {r['manifest']}). Try:")
    click.echo("\n".join(f"  {line}" for line in r["next"]))


def _episode_target(what: str, usage: str) -> None:
    if what != "episode":
        raise click.UsageError(usage)


def _promotion_json(p) -> dict:
    return {"episode": p.episode, "version": p.version, "action": p.action, "changes": p.changes, "entry": p.entry}


def _echo_promotion(p, as_json: bool) -> None:
    if as_json:
        _emit_json(_promotion_json(p))
    elif p.action == "unchanged":
        click.echo(f"episode {p.episode} {p.version} is already in production; nothing changed")
    else:
        for v, state in sorted(p.changes.items()):
            click.echo(f"episode {p.episode} {v}: {state}")


@cli.command(short_help="Make a version production (it must have rendered here, or --force --note).")
@click.argument("what")
@click.argument("episode", shell_complete=_complete_episodes)
@click.argument("version")
@click.option("--force", is_flag=True, help="Promote a version with no successful run here (needs --note).")
@click.option("--note", default="", help="Why; kept in the production history.")
@json_option
@click.pass_context
@handles_errors
def promote(ctx, what, episode, version, force, note, as_json):
    """`promote episode 11 v8`: make v8 production; the production version so far becomes previous.

    Refused for a version with no successful render on this registry unless --force --note TEXT.
    Promoting back (v7 after v8) restores v8's earlier state; every promotion is kept in the
    history that `reg versions episode 11` shows."""
    from reg.runner.render import promote as run_promote

    _episode_target(what, "say `reg promote episode N VERSION`")
    _echo_promotion(run_promote(_registry(ctx), episode, version, force=force, note=note), as_json)


@cli.command(short_help="Put back the version the last promotion replaced.")
@click.argument("what")
@click.argument("episode", shell_complete=_complete_episodes)
@click.option("--note", default="", help="Why; kept in the production history.")
@json_option
@click.pass_context
@handles_errors
def rollback(ctx, what, episode, note, as_json):
    """`rollback episode 11`: the version in production before the last promotion is production again."""
    from reg.runner.render import rollback as run_rollback

    _episode_target(what, "say `reg rollback episode N`")
    _echo_promotion(run_rollback(_registry(ctx), episode, note), as_json)


@cli.command(short_help="An episode's versions, their state and last run, and the production history.")
@click.argument("what")
@click.argument("episode", shell_complete=_complete_episodes)
@json_option
@click.pass_context
@handles_errors
def versions(ctx, what, episode, as_json):
    """`versions episode 11`: each version with its state and last run, then every promotion."""
    from reg.runner.render import version_report

    _episode_target(what, "say `reg versions episode N`")
    report = version_report(_registry(ctx), episode)
    for row in report["versions"]:
        row["last_run"] = _run_summary(row["last_run"]) if row["last_run"] else None
    if as_json:
        _emit_json(report)
        return
    click.echo(f"{'version':8} {'state':10} {'pipeline':12} last run")
    for r in report["versions"]:
        last = f"run {r['last_run']['id']} {r['last_run']['state']}" if r["last_run"] else "never rendered here"
        click.echo(f"{r['version']:8} {r['state']:10} {r['pipeline']:12} {last}  {r['note']}".rstrip())
    click.echo("production history:" if report["history"] else "production history: none on this registry")
    for h in report["history"]:
        note = f"  ({h['note']})" if h["note"] else ""
        forced = " forced" if h.get("forced") else ""
        click.echo(f"  {h['at']}  {h['action']}{forced} {h['version']} (was {h['from'] or 'none'}){note}")


# `reg --help` lists one line per command: summaries that fit it, not docstrings cut mid-sentence.
for _name, _summary in {
    "add": "Identify, verify, store and place a file (or an archive's).",
    "config": "Read, set, unset or list this machine's settings.",
    "derive": "Make a derived asset from its verified inputs.",
    "env": "Check pipelines' checkouts, venvs, packages, binaries.",
    "fetch": "Download open weights, verified and resumable; place them.",
    "license": "Record where you stand with a gated licence.",
    "promote": "Make a version production (rendered here, or --force).",
    "render": "Render an episode version once its inputs are verified.",
    "runs": "Recorded renders: state, times, exit code.",
    "show": "One asset's, licence's or run's record and history.",
    "versions": "An episode's versions, states, runs and promotions.",
}.items():
    cli.commands[_name].short_help = _summary


def main():
    import gc

    # A reg command is short-lived and allocates little cyclic garbage; the cyclic collector alone
    # costs ~0.1 s on a 10,000-asset status. `render`, which can run for hours, turns it back on.
    gc.disable()
    cli(obj={})


if __name__ == "__main__":
    main()
