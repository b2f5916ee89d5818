"""`reg demo`: the demo pipeline (runner/demo_pipeline, shipped in the wheel) set up in a registry.

The checkout is copied into the registry root rather than run from the installed package: a
site-packages folder may be read-only or shared, and a render must never write into it."""

from __future__ import annotations

import json
from importlib import resources


def setup_demo(reg) -> dict:
    """Copy the demo checkout to <root>/demo/checkout and its manifest to <root>/manifests/demo.toml."""
    shipped = resources.files("reg.runner") / "demo_pipeline"
    checkout = reg.root / "demo" / "checkout"
    checkout.mkdir(parents=True, exist_ok=True)
    (checkout / "render.py").write_bytes((shipped / "render.py").read_bytes())
    manifest = reg.root / "manifests" / "demo.toml"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    text = (shipped / "demo.toml").read_text().replace('root = "ROOT"', f"root = {json.dumps(str(checkout))}")
    manifest.write_text(text)
    return {
        "root": str(reg.root),
        "checkout": str(checkout),
        "manifest": str(manifest),
        "next": [
            "reg render episode 100 --version v1",
            "printf 'demo weights' > demo.bin && reg add demo.bin",
            "printf 'RIFF\\0\\0\\0\\0WAVEdemo' > narration.wav && reg add narration.wav --as demo100.audio",
            "reg render episode 100 --version v1",
        ],
    }
