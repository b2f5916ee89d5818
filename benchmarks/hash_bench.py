"""`reg add` of a 2 GiB file against `openssl dgst -sha256` and `sha256sum`, side by side.

Targets (issue 3): reg at most 1.15x openssl's wall time, at least 3x faster than sha256sum.
Page cache warm for all three (each reads the same file once before timing); each `reg add`
starts from an empty registry, so it really stores: a reflink where the file system can, else a
kernel copy hashed and fsynced, plus the copied placement (the store never shares the file's inode).
Run: python benchmarks/hash_bench.py [--gib 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path

from _common import REG, fresh_registry, interleaved, machine, write_random


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=2.0)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        tmp = Path(tmp)
        blob = write_random(tmp / "blob.bin", int(a.gib * 1024))
        root = tmp / "reg"
        manifest = (
            '[assets."bench.blob"]\nkind = "weights"\n'
            f'path = "{tmp}/placed/blob.bin"\nsource = {{ url = "http://example.invalid/blob" }}\n'
        )

        def fresh():
            fresh_registry(root, manifest, tmp / "placed")

        subprocess.run(["cat", blob], check=True, stdout=subprocess.DEVNULL)  # warm the page cache
        medians = interleaved(
            {
                "openssl": (["openssl", "dgst", "-sha256", blob], None),
                "sha256sum": (["sha256sum", blob], None),
                "reg": ([REG, "--root", root, "add", blob, "--as", "bench.blob", "--json"], fresh),
                "reg-symlink": (
                    [REG, "--root", root, "add", blob, "--as", "bench.blob", "--json", "--link", "symlink"],
                    fresh,
                ),
            },
            a.repeat,
        )
        openssl, sha256sum, reg = medians["openssl"], medians["sha256sum"], medians["reg"]
    size = a.gib * 1024
    print(f"machine: {machine()}")
    print(f"file: {a.gib:g} GiB of random bytes, page cache warm, medians of {a.repeat} interleaved rounds")
    print(f"{'command':30} {'seconds':>8} {'MiB/s':>8} {'reg vs this':>12}")
    rows = (
        ("openssl dgst -sha256", openssl),
        ("sha256sum", sha256sum),
        ("reg add (hash+store+place)", reg),
        ("reg add --link symlink", medians["reg-symlink"]),
    )
    for name, t in rows:
        print(f"{name:30} {t:8.3f} {size / t:8.0f} {reg / t:11.2f}x")
    print(
        f"reg / openssl = {reg / openssl:.2f} (target <= 1.15); sha256sum / reg = {sha256sum / reg:.2f} (target >= 3)"
    )


if __name__ == "__main__":
    main()
