"""The runner's own overhead (gate + records + environment facts + output storage) for a render of
a no-op step with 50 inputs, against running the same step directly. Target (issue 4): <= 0.3 s.

Measured in one process through `runner.render.render` (force=True so it really runs), minus the
same no-op subprocess timed directly; the `reg render` command's wall time is printed too.
Run: python benchmarks/runner_bench.py [--inputs 50]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import REG, machine, median_of, timed, write_random


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--inputs", type=int, default=50)
    a = ap.parse_args()
    from reg.registry.root import Registry
    from reg.runner.render import render

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = tmp / "reg"
        (root / "manifests").mkdir(parents=True)
        keys = [f"in{i:02d}" for i in range(a.inputs)]
        step = [sys.executable, "-c", "pass"]
        (root / "manifests" / "bench.toml").write_text(
            f'[pipelines.noop]\nname = "no-op"\nroot = "{tmp}"\nrequires = {keys!r}\n'.replace("'", '"')
            + f'[[pipelines.noop.steps]]\nname = "noop"\nargv = {step!r}\n'.replace("'", '"')
            + "".join(
                f'[assets.{k}]\nkind = "weights"\npipeline = "noop"\npath = "in/{k}.bin"\n'
                f'source = {{ url = "http://example.invalid/{k}" }}\n'
                for k in keys
            )
            + '[episodes.1]\nversions.v1 = { pipeline = "noop", state = "candidate" }\n'
        )
        for k in keys:
            (tmp / "src").mkdir(exist_ok=True)
            src = write_random(tmp / "src" / f"{k}.bin", 1)
            subprocess.run(
                [REG, "--root", root, "add", src, "--as", k, "--json"], check=True, stdout=subprocess.DEVNULL
            )
        reg = Registry(root)
        render(reg, "1", "v1", force=True)  # warm caches (catalog, environment facts)
        direct = median_of(lambda: subprocess.run(step, check=True), 7)
        runner = median_of(lambda: render(reg, "1", "v1", force=True), 7)
        cli = timed([REG, "--root", root, "render", "episode", "1", "--version", "v1", "--force", "--json"], 5)
    print(f"machine: {machine()}")
    print(f"render of a no-op step ({' '.join(step[1:])}) with {a.inputs} verified inputs, median of 7")
    print(f"{'what':40} {'seconds':>8}")
    print(f"{'the step run directly':40} {direct:8.3f}")
    print(f"{'runner.render (gate+records+step)':40} {runner:8.3f}")
    print(f"{'reg render command, wall (best of 5)':40} {cli:8.3f}")
    print(f"runner overhead = {runner - direct:.3f} s (target <= 0.3 s)")


if __name__ == "__main__":
    main()
