"""A small real pipeline (README demo and the runner tests): reads its inputs, reports frames, writes a file."""

import argparse
import hashlib
import os
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--weights", required=True)
p.add_argument("--audio", required=True)
p.add_argument("--out", required=True)
p.add_argument("--frames", type=int, default=3)
p.add_argument("--sleep", type=float, default=0.0)
p.add_argument("--fail", default="no")
p.add_argument("--pidfile")
a = p.parse_args()

if a.pidfile:
    with open(a.pidfile, "w") as f:
        f.write(str(os.getpid()))
digest = hashlib.sha256()
for path in (a.weights, a.audio):
    with open(path, "rb") as f:
        digest.update(f.read())
print(f"python {sys.version.split()[0]} in {sys.prefix}", flush=True)
for i in range(1, a.frames + 1):
    print(f"frame {i}/{a.frames}", flush=True)
    time.sleep(a.sleep)
if a.fail == "yes":
    print("CUDA out of memory (pretend)", file=sys.stderr, flush=True)
    sys.exit(2)
os.makedirs(os.path.dirname(a.out), exist_ok=True)
with open(a.out, "w") as f:
    f.write(f"rendered {a.frames} frames from inputs {digest.hexdigest()}\n")
