"""Finding the registry as git finds .git: --root, REG_HOME, nearest .reg/, per-user default."""

import json
import struct

from click.testing import CliRunner

from reg.cli.main import cli


def _status_root(args=(), cwd=None, env=None, monkeypatch=None):
    if cwd is not None:
        monkeypatch.chdir(cwd)
    result = CliRunner(env=env or {}).invoke(cli, [*args, "status", "--json"], obj={})
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["root"]


def test_init_then_nearest_dot_reg_upwards(tmp_path, monkeypatch):
    monkeypatch.delenv("REG_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(cli, ["init"], obj={}).exit_code == 0
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    assert _status_root(cwd=sub, monkeypatch=monkeypatch) == str(tmp_path / ".reg")
    assert (tmp_path / ".reg" / "reg.db").is_file()


def test_reg_home_then_root_flag_win(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".reg").mkdir()
    home = tmp_path / "home"
    assert _status_root(env={"REG_HOME": str(home)}) == str(home)
    assert _status_root(args=["--root", str(tmp_path / "x")], env={"REG_HOME": str(home)}) == str(tmp_path / "x")


def test_per_user_default(tmp_path, monkeypatch):
    monkeypatch.delenv("REG_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    assert _status_root() == str(tmp_path / "xdg" / "reg")


def test_safetensors_validated_by_header(reg, tmp_path):
    (reg.root / "manifests").mkdir(parents=True)
    (reg.root / "manifests" / "st.toml").write_text(
        '[assets.vae]\nkind = "weights"\npath = "'
        + str(tmp_path / "vae.safetensors")
        + '"\nvalidator = "safetensors"\n'
        'filenames = ["model.safetensors"]\nsource = { url = "http://example.invalid/vae" }\n'
    )
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}).encode()
    good = tmp_path / "model.safetensors"
    good.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    cut = tmp_path / "cut" / "model.safetensors"
    cut.parent.mkdir()
    cut.write_bytes(good.read_bytes()[:-4])
    result = reg("add", cut)
    assert result.exit_code == 1 and "do not match the 12 data bytes" in result.stderr
    code, results = reg.json("add", good)
    assert code == 0 and results[0]["summary"] == "safetensors, 1 tensors"
