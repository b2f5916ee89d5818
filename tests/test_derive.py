"""Derived assets: made by a command from verified inputs, then stored and placed like any file."""

import sys

MANIFEST = f'''
[pipelines.fixer]
name = "Fixer"
root = "{{root}}"
venv = "{sys.prefix}"

[assets.raw_model]
kind = "weights"
path = "raw/model.txt"
source = {{ url = "http://example.invalid/model.txt" }}

[assets.fixed_model]
kind = "weights"
pipeline = "fixer"
path = "fixed/model.txt"
# an in-place fixer, as CAP4D's fix_flame_pickle.py is
source = {{ derived = ["raw_model"], command = ["{{python}}", "fix.py", "{{input.raw_model}}", "{{param}}"], output = "{{input.raw_model}}" }}
'''

FIXER = """
import sys
path = sys.argv[1]
if sys.argv[2] == "fail":
    print("cannot fix this file", file=sys.stderr)
    sys.exit(3)
data = open(path).read()
open(path, "w").write(data.upper())
"""


def _setup(reg, tmp_path, mode="ok"):
    checkout = tmp_path / "fixer"
    checkout.mkdir()
    (checkout / "fix.py").write_text(FIXER)
    (reg.root / "manifests").mkdir(parents=True, exist_ok=True)
    (reg.root / "manifests" / "fix.toml").write_text(MANIFEST.replace("{root}", str(checkout)).replace("{param}", mode))
    return checkout


def test_status_leads_from_the_input_to_the_derivation(reg, tmp_path):
    checkout = _setup(reg, tmp_path)
    _, doc = reg.json("status")
    assert doc["assets"]["fixed_model"]["state"] == "missing"
    fetch = next(a for a in doc["machine_actions"] if a["id"] == "fetch:raw_model")
    assert "fixed_model" in fetch["assets"] and "reg derive fixed_model" in fetch["commands"]
    raw = tmp_path / "model.txt"
    raw.write_text("weights\n")
    assert reg("add", raw, "--as", "raw_model").exit_code == 0
    _, doc = reg.json("status")
    assert any(a["id"] == "derive:fixed_model" for a in doc["machine_actions"])
    code, results = reg.json("derive", "fixed_model")
    assert code == 0 and results[0]["key"] == "fixed_model"
    assert (checkout / "fixed" / "model.txt").read_text() == "WEIGHTS\n"
    assert raw.read_text() == "weights\n"  # the stored input was never touched
    assert "derived from raw_model" in reg("show", "fixed_model").stdout


def test_derive_refuses_until_inputs_are_verified(reg, tmp_path):
    _setup(reg, tmp_path)
    result = reg("derive", "fixed_model")
    assert result.exit_code == 3 and "raw_model" in result.stderr


def test_failing_command_stores_nothing(reg, tmp_path):
    _setup(reg, tmp_path, mode="fail")
    raw = tmp_path / "model.txt"
    raw.write_text("weights\n")
    assert reg("add", raw, "--as", "raw_model").exit_code == 0
    before = reg.objects()
    result = reg("derive", "fixed_model")
    assert result.exit_code == 1 and "exited with 3" in result.stderr and "cannot fix this file" in result.stderr
    assert reg.objects() == before and not list((reg.root / "objects" / "tmp").glob("derive-*"))
