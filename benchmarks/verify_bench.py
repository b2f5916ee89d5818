"""Re-verify of an unchanged catalog (stat fingerprints) against a full rehash, side by side.

Target (issue 3): at least 500x faster. Both are timed in one process through the same
`registry.verify.verify` call (with and without full=True), so interpreter start-up, which
both would pay equally as commands, does not hide the difference; the command-line wall time
of `reg verify` is printed too, for what a user waits.
Run: python benchmarks/verify_bench.py [--files 16 --mib 256]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path

from _common import REG, machine, median_of, timed, write_random


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--mib", type=int, default=256)
    a = ap.parse_args()
    from reg.registry.root import Registry
    from reg.registry.verify import verify

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        tmp = Path(tmp)
        root = tmp / "reg"
        (root / "manifests").mkdir(parents=True)
        (root / "manifests" / "bench.toml").write_text(
            "".join(
                f'[assets."bench.{i}"]\nkind = "weights"\npath = "{tmp}/placed/{i}.bin"\n'
                f'source = {{ url = "http://example.invalid/{i}" }}\n'
                for i in range(a.files)
            )
        )
        for i in range(a.files):
            src = write_random(tmp / f"{i}.bin", a.mib)
            subprocess.run(
                [REG, "--root", root, "add", src, "--as", f"bench.{i}", "--json"], check=True, stdout=subprocess.DEVNULL
            )
        reg = Registry(root)
        quick = median_of(lambda: verify(reg), 7)
        full = median_of(lambda: verify(reg, full=True), 3)
        cli_quick = timed([REG, "--root", root, "verify", "--json"], 5)
    print(f"machine: {machine()}")
    print(f"catalog: {a.files} files x {a.mib} MiB = {a.files * a.mib / 1024:g} GiB, page cache warm")
    print(f"{'operation':36} {'seconds':>9}")
    print(f"{'verify --full (rehash everything)':36} {full:9.4f}")
    print(f"{'verify (stat fingerprints)':36} {quick:9.4f}")
    print(f"{'reg verify command, wall':36} {cli_quick:9.4f}")
    print(f"full / stat = {full / quick:.0f}x (target >= 500x)")


if __name__ == "__main__":
    main()
