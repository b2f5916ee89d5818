"""reg works installed from a plain wheel (not editable): manifests and migrations ship inside it."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def test_wheel_install_runs_status_with_shipped_manifests_and_migrations(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, PROJECT], check=True)
    wheel = next(wheels.glob("reg-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    # One import package and its metadata: nothing generic (cli, migrations) lands in site-packages.
    assert {n.split("/")[0] for n in names} == {
        "reg",
        wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info",
    }
    assert "reg/runner/demo_pipeline/demo.toml" in names and "reg/runner/demo_pipeline/render.py" in names
    assert "reg/manifests/episodes.toml" in names and "reg/migrations/versions/0001_initial.py" in names
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run([venv / "bin/pip", "install", "-q", wheel], check=True)
    env = {**os.environ, "REG_HOME": str(tmp_path / "home")}
    env.pop("PYTHONPATH", None)
    out = subprocess.run(
        [venv / "bin/reg", "status", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    doc = json.loads(out.stdout)
    demo = subprocess.run([venv / "bin/reg", "demo", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert demo.returncode == 0 and json.loads(demo.stdout)["checkout"].startswith(str(tmp_path / "home"))
    assert doc["summary"]["assets"] > 30 and any(a["id"] == "licence:flame" for a in doc["owner_actions"])
    where = subprocess.run(
        [venv / "bin/python", "-c", "import reg; print(reg.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(venv) in where  # the wheel's copy ran, not this checkout
    for argv in ([venv / "bin/reg", "--version"], [venv / "bin/python", "-m", "reg", "--version"]):
        version = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout
        assert version.strip() == "reg 0.1.0"
