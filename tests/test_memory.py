"""Hashing keeps memory flat: a file larger than the bound is hashed in a child whose peak RSS stays under it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

BOUND_MIB = 150


def test_hashing_a_file_larger_than_the_bound_keeps_rss_under_it(tmp_path):
    big = tmp_path / "big.bin"
    chunk = os.urandom(1 << 20)
    with open(big, "wb") as f:
        for _ in range(400):  # 400 MiB: a whole-file map would count all of it as resident
            f.write(chunk)
    # VmHWM is this process image's own peak (ru_maxrss would carry over pytest's, across exec)
    code = (
        "import sys; from reg.registry.store import hash_file; sha = hash_file(sys.argv[1])[0]; "
        "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]; print(sha, hwm)"
    )
    out = subprocess.run([sys.executable, "-c", code, big], capture_output=True, text=True, check=True)
    sha, peak_kib = out.stdout.split()
    assert sha == hashlib.sha256(big.read_bytes()).hexdigest()
    assert int(peak_kib) / 1024 < BOUND_MIB, f"peak RSS {int(peak_kib) / 1024:.0f} MiB"
