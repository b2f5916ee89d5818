"""`reg derive KEY`: make a derived asset by running its command on verified copies of its inputs.

The command works in a scratch folder inside the store's temp space on writable copies of the
inputs (so an in-place fixer such as CAP4D's fix_flame_pickle.py never touches a stored object),
in the checkout and virtualenv of its pipeline. Its output then takes `reg add`'s road:
validated, stored, placed, recorded with the input hashes and the command in its history.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import uuid
from pathlib import Path
from types import SimpleNamespace

from reg.registry.errors import BlockedError, RegError
from reg.registry.ingest import AddResult, Candidate, Progress, null_progress, store_and_place
from reg.registry.status import python_of

from .plan import fill_template

TIMEOUT_S = 6 * 3600


def derive(
    reg, key: str, replace: bool = False, link: str = "copy", progress: Progress = null_progress
) -> list[AddResult]:
    from reg.registry.status import asset_states
    from reg.registry.verify import verify

    catalog = reg.catalog
    asset = catalog.asset(key)
    src = asset.source
    if src.type != "derived":
        raise RegError(f"'{key}' is not a derived asset (its source is {src.type}); `reg status` says how to get it.")
    verify(reg, list(src.inputs))
    states = asset_states(reg)
    pending = [k for k in src.inputs if states[k]["state"] not in ("verified", "unchecked")]
    if pending:
        raise BlockedError(
            f"'{key}' is made from {', '.join(pending)}, which is not verified yet. Get it first "
            "(`reg status` shows how), then run `reg derive " + key + "` again."
        )
    pipeline = catalog.pipelines[src.pipeline or asset.pipeline]
    work = reg.store.tmp / f"derive-{os.getpid()}-{uuid.uuid4().hex}"  # pid: gc tells a crashed one
    work.mkdir(parents=True)
    try:
        copies = {}
        for k in src.inputs:  # writable copies: the command may rewrite them in place
            copies[k] = work / Path(catalog.assets[k].path).name
            shutil.copyfile(reg.store.object_path(states[k]["sha256"]), copies[k])
        values = {
            "python": python_of(pipeline),
            "root": str(reg.pipeline_root(pipeline.key)),
            "work": str(work),
            "input": SimpleNamespace(**copies),
        }
        argv = [fill_template(a, values, pipeline, f"derive {key}") for a in src.command]
        output = Path(fill_template(src.output, values, pipeline, f"derive {key}"))
        _run(argv, str(values["root"]), pipeline, key)
        if not output.is_file():
            raise RegError(
                f"`{shlex.join(argv)}` exited 0 but left no {output}; fix `output` of '{key}' in "
                f"{asset.manifest}. Nothing was stored or placed."
            )
        with progress(output.stat().st_size, key) as bar:
            staged = reg.store.stage_file(output, bar.update)
        inputs = ", ".join(f"{k} {states[k]['sha256'][:12]}" for k in src.inputs)
        label = f"derived from {inputs} by `{shlex.join(argv)}`"
        return store_and_place(reg, [(Candidate(asset, label), staged)], None, None, replace, link, progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(argv: list[str], cwd: str, pipeline, key: str) -> None:
    import os

    env = dict(os.environ)
    if pipeline.venv:
        venv = os.path.expanduser(pipeline.venv)
        env.update(VIRTUAL_ENV=venv, PATH=f"{venv}/bin:{env.get('PATH', '')}")
    try:
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RegError(
            f"Deriving '{key}': `{shlex.join(argv)}` could not run in {cwd}: {exc}. Check the "
            f"{pipeline.name} checkout and virtualenv. Nothing was stored or placed."
        ) from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-10:])
        raise RegError(
            f"Deriving '{key}': `{shlex.join(argv)}` exited with {proc.returncode}. Nothing was stored "
            f"or placed. Last lines:\n{tail}"
        )
