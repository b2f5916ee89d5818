"""A real registry per test: a temp root with a real SQLite file migrated by Alembic, and temp
pipeline checkouts configured through `reg config`, driven through the real CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from reg.cli.main import cli


@dataclass
class Reg:
    root: Path
    home: Path  # where pipeline checkouts live for this test

    def __call__(self, *args: str):
        result = CliRunner().invoke(cli, ["--root", str(self.root), *map(str, args)], obj={})
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    def json(self, *args: str):
        result = self(*args, "--json")
        return result.exit_code, json.loads(result.stdout)

    def pipeline_root(self, key: str) -> Path:
        return self.home / key

    def objects(self) -> list[Path]:
        base = self.root / "objects" / "sha256"
        return sorted(p for p in base.rglob("*") if p.is_file()) if base.exists() else []


@pytest.fixture
def reg(tmp_path, monkeypatch) -> Reg:
    monkeypatch.delenv("REG_HOME", raising=False)
    monkeypatch.delenv("REG_DATABASE_URL", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # `~` paths (torch hub cache) stay inside the test
    r = Reg(tmp_path / "registry", tmp_path / "code")
    for key in ("cap4d", "pixel3dmm", "talkinggaussian", "latentsync"):
        r.pipeline_root(key).mkdir(parents=True)
        assert r("config", f"pipelines.{key}.root", r.pipeline_root(key)).exit_code == 0
    assert r("config", "media.root", tmp_path / "media").exit_code == 0
    return r


@pytest.fixture
def flame_dest(reg) -> Path:
    return reg.pipeline_root("cap4d") / "data/assets/flame/flame2023_no_jaw.pkl"
