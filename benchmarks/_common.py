"""Shared bits of the benchmarks: timing a command several times, and the reg executable."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REG = shutil.which("reg") or str(Path(sys.executable).with_name("reg"))


def timed(cmd: list, repeat: int = 3, env: dict | None = None, before=None) -> float:
    """Best wall time of `repeat` runs (after `before()`, untimed, each run)."""
    times = []
    for _ in range(repeat):
        if before:
            before()
        t = time.perf_counter()
        subprocess.run(
            cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})}
        )
        times.append(time.perf_counter() - t)
    return min(times)


def interleaved(commands: dict[str, tuple[list, object]], rounds: int = 5) -> dict[str, float]:
    """Median wall time per command over `rounds` interleaved rounds (A, B, C, A, B, C, ...).

    Side by side in time, so a noisy neighbour or a disk still flushing hits every side alike;
    a command's `before` (or None) runs untimed before each of its runs."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, (cmd, before) in commands.items():
            if callable(before):
                before()
            t = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def median_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    return f"{cpu}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"


def write_random(path: Path, mib: int) -> Path:
    """A file of random bytes (incompressible, so no file system shortcut flatters reg)."""
    with open(path, "wb") as f:
        for _ in range(max(1, mib // 64)):
            f.write(os.urandom(min(mib, 64) << 20))
    return path


def fresh_registry(root: Path, manifest: str, placed: Path) -> None:
    """An empty, migrated registry whose only manifest is `manifest`; nothing placed yet."""
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(placed, ignore_errors=True)
    (root / "manifests").mkdir(parents=True)
    (root / "manifests" / "bench.toml").write_text(manifest)
    subprocess.run([REG, "--root", root, "status", "--json"], check=True, stdout=subprocess.DEVNULL)
