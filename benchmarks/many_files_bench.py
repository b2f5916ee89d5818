"""Many files at once: `reg add DIR` of N catalogued 1 MiB files, and `reg add` of a tar holding the
same N files, each beside `sha256sum` of the same bytes, in interleaved rounds (medians).

Targets (issue 14): batch add at or below `dvc add DIR` (4.5 s for 1000 x 1 MiB on this class of
machine, measured by the issue's author; DVC is not installed here, so sha256sum is the baseline
printed); archives linear in their member count (compare --n 250 with --n 1000).
Run: python benchmarks/many_files_bench.py [--n 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import tarfile
import tempfile
from pathlib import Path

from _common import REG, fresh_registry, interleaved, machine


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        tmp = Path(tmp)
        drop = tmp / "drop"
        drop.mkdir()
        manifest = []
        for i in range(a.n):
            (drop / f"w{i:05d}.bin").write_bytes(os.urandom(1 << 20))
            manifest.append(
                f'[assets.w{i:05d}]\nkind = "weights"\npath = "{tmp}/placed/w{i:05d}.bin"\n'
                'source = { url = "http://example.invalid/w" }\n'
            )
        with tarfile.open(tmp / "all.tar", "w") as t:
            for f in sorted(drop.iterdir()):
                t.add(f, arcname=f"weights/{f.name}")
        root = tmp / "reg"

        def fresh():
            fresh_registry(root, "".join(manifest), tmp / "placed")

        files = sorted(str(f) for f in drop.iterdir())
        medians = interleaved(
            {
                "sha256sum": (["sha256sum", *files], None),
                "reg add DIR": ([REG, "--root", root, "add", drop, "--json"], fresh),
                "reg add TAR": ([REG, "--root", root, "add", tmp / "all.tar", "--json"], fresh),
            },
            a.repeat,
        )
    print(f"machine: {machine()}")
    print(f"{a.n} files of 1 MiB, medians of {a.repeat} interleaved rounds")
    for name, t in medians.items():
        print(f"{name:14} {t:8.3f} s  {t / medians['sha256sum']:6.2f}x sha256sum")


if __name__ == "__main__":
    main()
