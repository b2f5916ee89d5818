"""`reg fetch` (download + sha256 check + store + place) against a plain `hf_hub_download` of the
same file from the same local Hub stand-in, side by side. Target (issue 5): at most 1.2x.

reg hashes each chunk as the client writes it, so verification adds no second pass over the bytes.
reg also fsyncs the object before recording it (writeback starts during the download); plain
hf_hub_download does not, so a third line times hf_hub_download followed by an fsync of its file.
On a disk still busy flushing earlier writes that fsync dominates: compare with the third line.
Run: python benchmarks/fetch_bench.py [--mib 1024]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from _common import REG, fresh_registry, machine, timed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from hubserver import Hub, serve  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    hub = Hub()
    hub.add("bench/models", "blob.bin", os.urandom(a.mib << 20))
    server, url = serve(hub)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        tmp = Path(tmp)
        root, cache = tmp / "reg", tmp / "hf-cache"
        manifest = (
            '[assets."bench.blob"]\nkind = "weights"\n'
            f'path = "{tmp}/placed/blob.bin"\nsource = {{ huggingface = "bench/models", file = "blob.bin" }}\n'
        )
        env = {"HF_ENDPOINT": url, "HF_HOME": str(tmp / "hf-home"), "HF_HUB_DISABLE_PROGRESS_BARS": "1"}

        def fresh():
            fresh_registry(root, manifest, tmp / "placed")

        plain = timed(
            [
                sys.executable,
                "-c",
                "import sys; from huggingface_hub import hf_hub_download; "
                "hf_hub_download('bench/models', 'blob.bin', cache_dir=sys.argv[1])",
                cache,
            ],
            a.repeat,
            env,
            before=lambda: shutil.rmtree(cache, ignore_errors=True),
        )
        durable = timed(
            [
                sys.executable,
                "-c",
                "import os, sys; from huggingface_hub import hf_hub_download; "
                "p = hf_hub_download('bench/models', 'blob.bin', cache_dir=sys.argv[1]); "
                "fd = os.open(os.path.realpath(p), os.O_RDONLY); os.fsync(fd)",
                cache,
            ],
            a.repeat,
            env,
            before=lambda: shutil.rmtree(cache, ignore_errors=True),
        )
        reg = timed([REG, "--root", root, "fetch", "bench.blob", "--json"], a.repeat, env, before=fresh)
    server.shutdown()
    print(f"machine: {machine()}")
    print(f"file: {a.mib} MiB from a local Hub stand-in (loopback), best of {a.repeat}")
    print(f"{'command':44} {'seconds':>8} {'MiB/s':>8}")
    print(f"{'hf_hub_download (no verification)':44} {plain:8.3f} {a.mib / plain:8.0f}")
    print(f"{'hf_hub_download, then fsync (on disk)':44} {durable:8.3f} {a.mib / durable:8.0f}")
    print(f"{'reg fetch (download+sha256+fsync+store+place)':44} {reg:8.3f} {a.mib / reg:8.0f}")
    print(
        f"reg / hf_hub_download = {reg / plain:.2f} (target <= 1.2); "
        f"reg / (hf_hub_download + fsync) = {reg / durable:.2f}"
    )


if __name__ == "__main__":
    main()
