"""Run a plan's steps as real subprocesses: streamed output, a log file, timeout, cancellation."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .plan import Plan
from .records import RunState

FRAME_RE = re.compile(rb"(?:frame|step|it)\D{0,3}(\d+)\s*/\s*(\d+)", re.IGNORECASE)
KILL_GRACE_S = 5.0


@dataclass
class Outcome:
    state: RunState  # succeeded | failed | timed-out | cancelled
    exit_code: int | None = None
    error: str = ""


class Cancellation:
    """Set by SIGINT/SIGTERM while a render runs; the step loop then stops the process group."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


RUN_TAG = "REG_RUN_ID"  # in every step's environment, so a crashed run's leftovers can be found


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when reg dies (kill -9 included). Linux only."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def reap_leftovers(run_id: int, timeout: float = 10.0) -> None:
    """Kill every process of this user still carrying the run's tag (grandchildren that outlived
    a killed reg), then wait until they are gone, so a new run never overlaps a lost one."""
    tag = f"{RUN_TAG}={run_id}".encode()
    end = time.monotonic() + timeout
    while True:
        pids = []
        for entry in os.scandir("/proc") if os.path.isdir("/proc") else []:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/environ", "rb") as f:
                    if tag in f.read().split(b"\0"):
                        pids.append(int(entry.name))
            except OSError:
                continue
        if not pids or time.monotonic() > end:
            return
        for pid in pids:
            with contextlib.suppress(OSError):  # gone meanwhile
                os.killpg(os.getpgid(pid), signal.SIGKILL)
        time.sleep(0.1)


def run_steps(
    plan: Plan,
    log_path: Path,
    deadline: float | None,
    cancel: Cancellation,
    on_event: Callable[[dict], None],
    on_line: Callable[[bytes], None],
    run_id: int = 0,
    env: dict[str, str] | None = None,
) -> Outcome:
    """Run each step in order; stop at the first that fails. The child runs in its own session so
    that stopping it stops everything it started (the whole process group), dies with reg (parent
    death signal), and carries the run's tag in its environment for `reap_leftovers`. `env`
    (`offline_env`) comes before the step's own, so a pipeline's manifest can still override it."""
    tail: deque[bytes] = deque(maxlen=20)
    with open(log_path, "ab") as log:
        for index, step in enumerate(plan.steps):
            on_event({"event": "step", "step": step.name, "index": index, "total": len(plan.steps)})
            log.write(f"$ {' '.join(step.argv)}\n".encode())
            log.flush()
            try:
                proc = subprocess.Popen(
                    step.argv,
                    cwd=step.cwd,
                    env={**os.environ, **(env or {}), **step.env, RUN_TAG: str(run_id)},
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            except OSError as exc:
                return Outcome("failed", None, f"step '{step.name}' could not start: {exc} (cwd {step.cwd})")
            reader = threading.Thread(target=_pump, args=(proc, log, tail, step.name, on_event, on_line), daemon=True)
            reader.start()
            stopped = _wait(proc, deadline, cancel)
            reader.join()
            if stopped:
                what = "timed out" if stopped == "timed-out" else "was cancelled"
                return Outcome(
                    "timed-out" if stopped == "timed-out" else "cancelled",
                    proc.returncode,
                    f"step '{step.name}' {what}",
                )
            if proc.returncode != 0:
                last = b"".join(tail).decode(errors="replace")
                return Outcome(
                    "failed", proc.returncode, f"step '{step.name}' exited with {proc.returncode}; last lines:\n{last}"
                )
            missing = [o for o in step.outputs if not os.path.exists(o)]
            if missing:
                return Outcome("failed", 0, f"step '{step.name}' exited 0 but did not write {', '.join(missing)}")
    return Outcome("succeeded", 0)


def offline_env(reg, plan: Plan) -> dict[str, str]:
    """The cache roots reg placed the run-time files under (TORCH_HOME, HF_HOME, HF_HUB_CACHE), and,
    when every download the plan declares (its Hugging Face and URL inputs) is verified, the Hugging
    Face offline switches: a download nobody declared then fails at once instead of running (or
    hanging) mid-render. A pipeline that must download can set HF_HUB_OFFLINE = "0" in its env."""
    from reg.registry.caches import step_environment
    from reg.registry.fetch import fetchable
    from reg.registry.status import asset_states

    states = asset_states(reg)
    downloads = [k for k in plan.inputs if fetchable(reg.catalog.assets[k])]
    return step_environment(reg.cache_roots, offline=all(states[k]["state"] == "verified" for k in downloads))


def _pump(proc, log, tail, step, on_event, on_line) -> None:
    for line in iter(proc.stdout.readline, b""):
        log.write(line)
        log.flush()
        tail.append(line)
        on_line(line)
        if m := FRAME_RE.search(line):
            on_event({"event": "frames", "step": step, "done": int(m.group(1)), "total": int(m.group(2))})
    proc.stdout.close()


def _wait(proc, deadline: float | None, cancel: Cancellation) -> str | None:
    """Wait for the step; on timeout or cancellation stop its process group. Returns why it stopped."""
    while True:
        try:
            proc.wait(timeout=0.1)
            return None
        except subprocess.TimeoutExpired:
            pass
        reason = (
            "cancelled" if cancel.requested else ("timed-out" if deadline and time.monotonic() > deadline else None)
        )
        if reason:
            _stop_group(proc)
            return reason


def _stop_group(proc) -> None:
    for sig, grace in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


ENV_SCRIPT = (
    "import json, platform, importlib.metadata as m;"
    "print(json.dumps({'python': platform.python_version(), 'executable': __import__('sys').executable,"
    "'packages': {d.metadata['Name']: d.version for d in m.distributions() if d.metadata['Name']}}))"
)


def environment_facts(python: str) -> dict:
    """Python and package versions of a pipeline's interpreter, GPU name where there is one."""
    import platform
    import shutil
    import socket

    facts: dict = {"host": socket.gethostname(), "platform": platform.platform()}
    try:
        out = subprocess.run([python, "-c", ENV_SCRIPT], capture_output=True, timeout=60, check=True)
        facts.update(json.loads(out.stdout))
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        facts["python_error"] = str(exc)
    if shutil.which("nvidia-smi"):
        try:
            smi = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            )
            facts["gpus"] = [line.strip() for line in smi.stdout.splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError):
            pass
    return facts
