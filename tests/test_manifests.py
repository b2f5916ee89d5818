"""Manifests: validated on load with the file and key named; the root's own override by key."""

from pathlib import Path


def _user_manifest(reg, text: str) -> Path:
    d = reg.root / "manifests"
    d.mkdir(parents=True, exist_ok=True)
    p = d / "local.toml"
    p.write_text(text)
    return p


def test_bad_manifest_names_file_key_and_problem(reg):
    p = _user_manifest(reg, '[assets.mine]\nkind = "weight"\npath = "a.bin"\nsource = { url = "http://x" }\n')
    result = reg("status")
    assert result.exit_code == 1
    assert str(p) in result.stderr and "'mine'" in result.stderr and "kind = 'weight'" in result.stderr
    assert "Traceback" not in result.stderr


def test_toml_syntax_error_names_the_file(reg):
    p = _user_manifest(reg, "[assets.mine\n")
    result = reg("ls")
    assert result.exit_code == 1 and str(p) in result.stderr


def test_dangling_reference_is_reported(reg):
    _user_manifest(reg, '[pipelines.extra]\nname = "X"\nroot = "/tmp/x"\nrequires = ["nope"]\n')
    result = reg("status")
    assert result.exit_code == 1 and "unknown asset 'nope'" in result.stderr


def test_user_manifest_overrides_a_shipped_asset_by_key(reg, tmp_path):
    _user_manifest(
        reg,
        '[assets.flame2023]\nkind = "face-model"\npipeline = "cap4d"\n'
        'path = "assets/flame2023_no_jaw.pkl"\nvalidator = "flame-pkl"\n'
        f'sha256 = "{"a" * 64}"\nsource = {{ gated = "flame", archive = "FLAME2023.zip" }}\n',
    )
    code, doc = reg.json("status")
    assert doc["assets"]["flame2023"]["path"] == str(reg.pipeline_root("cap4d") / "assets/flame2023_no_jaw.pkl")


def test_pipeline_root_is_configurable_per_machine(reg, tmp_path):
    assert reg("config", "pipelines.cap4d.root", tmp_path / "elsewhere").exit_code == 0
    code, doc = reg.json("status")
    assert doc["assets"]["flame2023"]["path"].startswith(str(tmp_path / "elsewhere"))
    assert reg("config", "pipelines.nope.root", "/x").exit_code == 1
