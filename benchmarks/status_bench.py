"""`reg status --json` on a registry with 10,000 assets and 1,000 episode versions; `reg --help`.

Targets (issue 3): status at most 0.5 s, --help at most 0.15 s. Half of the assets are
registered and placed (real files, real records), the rest missing, so status does its real work.
Run: python benchmarks/status_bench.py [--assets 10000 --versions 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _common import REG, machine, timed


def build(root: Path, n_assets: int, n_versions: int) -> None:
    (root / "manifests").mkdir(parents=True)
    files = root / "files"
    lines = [f'[pipelines.bench]\nname = "Bench"\nroot = "{files}"\nrequires = ["b00000", "b00001"]\n']
    for i in range(n_assets):
        lines.append(
            f'[assets.b{i:05d}]\nkind = "weights"\npipeline = "bench"\npath = "w/{i:05d}.bin"\n'
            f'source = {{ url = "http://example.invalid/{i}" }}\n'
        )
    per = max(1, n_versions // 2)
    for e in range(per):
        inputs = ", ".join(f'"b{(e * 7 + k) % n_assets:05d}"' for k in range(8))
        lines.append(
            f'[episodes.{1000 + e}]\nversions.v1 = {{ pipeline = "bench", state = "production", requires = [{inputs}] }}\n'
            f'versions.v2 = {{ pipeline = "bench", state = "candidate", requires = [{inputs}] }}\n'
        )
    (root / "manifests" / "bench.toml").write_text("\n".join(lines))

    from sqlalchemy.orm import Session

    from reg.registry import state
    from reg.registry.models import AssetRecord, StoreObject
    from reg.registry.root import Registry
    from reg.registry.store import Fingerprint

    reg = Registry(root)
    (files / "w").mkdir(parents=True)
    now = state.now()
    placed = []
    for i in range(0, n_assets, 2):  # half registered and placed
        p = files / "w" / f"{i:05d}.bin"
        p.write_bytes(b"x%d" % i)
        placed.append((i, p, Fingerprint.of(p), f"{i:064x}"))
    with Session(reg.engine) as s, s.begin():
        s.add_all(StoreObject(sha256=sha, size=fp.size, stored_at=now) for i, p, fp, sha in placed)
        s.flush()
        for i, p, fp, sha in placed:
            s.add(
                AssetRecord(
                    host=state.host_id(),
                    key=f"b{i:05d}",
                    sha256=sha,
                    placed_path=str(p),
                    link_mode="copy",
                    state="verified",
                    fp_size=fp.size,
                    fp_mtime_ns=fp.mtime_ns,
                    fp_inode=fp.inode,
                    fp_ctime_ns=fp.ctime_ns,
                    verified_at=now,
                )
            )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--assets", type=int, default=10_000)
    ap.add_argument("--versions", type=int, default=1_000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "reg"
        build(root, a.assets, a.versions)
        env = {"REG_HOME": str(root)}
        timed([REG, "status", "--json"], 1, env)  # first run: page cache, any catalog cache
        status = timed([REG, "status", "--json"], 5, env)
        helptime = timed([REG, "--help"], 5, env)
        python = timed([sys.executable, "-c", "pass"], 5, env)
    print(f"machine: {machine()}")
    print(f"catalog: {a.assets} assets, {a.versions} episode versions, half registered")
    print(f"{'command':28} {'best of 5':>10} {'target':>8} {'ratio to target':>16}")
    print(f"{'python -c pass (baseline)':28} {python:9.3f}s {'':>8} {'':>16}")
    print(f"{'reg status --json':28} {status:9.3f}s {0.5:7.2f}s {status / 0.5:15.2f}x")
    print(f"{'reg --help':28} {helptime:9.3f}s {0.15:7.2f}s {helptime / 0.15:15.2f}x")


if __name__ == "__main__":
    main()
