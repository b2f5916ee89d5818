"""Manifests: validated on load with the file and key named; the root's own override by key."""

from pathlib import Path

import pytest

from reg.registry import catalog as catalog_module
from reg.registry.catalog import load_catalog
from reg.registry.errors import ManifestError, UnknownKeyError


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


# --- every field is type-checked: a bad manifest is one ManifestError, never a traceback -----

ASSET = '[assets.mine]\nkind = "weights"\npath = "a.bin"\nsource = { url = "https://x/a.bin" }\n'


def _load(tmp_path, text: str):
    d = tmp_path / "manifests"
    d.mkdir(exist_ok=True)
    (d / "local.toml").write_text(text)
    return load_catalog(d)


@pytest.mark.parametrize(
    "text, entry, problem",
    [
        (ASSET.replace('"a.bin"', "5"), "mine", "path = 5 is not a string"),
        (ASSET + "sha256 = 5\n", "mine", "sha256 = 5 is not a string"),
        (ASSET + "size = true\n", "mine", "size = True is not a non-negative integer"),
        (ASSET + "name = 5\n", "mine", "name = 5 is not a string"),
        (ASSET + "checks = { min_tensors = -1 }\n", "mine.checks", "min_tensors = -1"),
        (ASSET.replace('url = "https://x/a.bin"', 'url = "u", owner = "o"'), "mine.source", "exactly one of"),
        (ASSET.replace("{ url", "{ derived = ['flame2023'], url"), "mine.source", "found url, derived"),
        ("[episodes.99]\nversions = [1, 2]\n", "99", "versions = [1, 2] is not a table of tables"),
        ('[episodes.99]\ninputs = ["a"]\nversions = {}\n', "99", "inputs = ['a'] is not a table of strings"),
        ('[pipelines.p]\nname = "P"\nroot = "/p"\nenv = ["A=1"]\n', "p", "env = ['A=1'] is not a table"),
        ('[pipelines."a/b"]\nname = "P"\nroot = "/p"\n', "(top level)", "key 'a/b' is not a key"),
        ("assets = 5\n", "(top level)", "assets = 5 is not a table of tables"),
        (
            '[episodes.99.versions.v1]\npipeline = "cap4d"\nstate = "planned"\nparams = { a = { b = 1 } }\n',
            "99.versions.v1",
            "is not a string, number or boolean",
        ),
    ],
)
def test_wrong_types_name_the_file_entry_and_field(tmp_path, text, entry, problem):
    with pytest.raises(ManifestError) as err:
        _load(tmp_path, text)
    message = str(err.value)
    assert str(tmp_path / "manifests" / "local.toml") in message
    assert f"entry '{entry}'" in message and problem in message


def test_unreadable_manifests_name_the_file(tmp_path):
    for raw in (b'a = "\xff"\n', b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n"):
        (tmp_path / "manifests").mkdir(exist_ok=True)
        (tmp_path / "manifests" / "local.toml").write_bytes(raw)
        with pytest.raises(ManifestError, match="local.toml cannot be read"):
            load_catalog(tmp_path / "manifests")


@pytest.mark.parametrize(
    "template", ["{root:>2000000000}", "{root!r}", "{0}", "{}", "{input[0]}", "{input.x.__class__}", "{root"]
)
def test_argv_templates_allow_only_plain_placeholders(tmp_path, template):
    text = f'[pipelines.p]\nname = "P"\nroot = "/p"\n[[pipelines.p.steps]]\nname = "s"\nargv = ["{template}"]\n'
    with pytest.raises(ManifestError, match=r"entry 'p.steps\[0\]': argv = .* is not a list of argv templates"):
        _load(tmp_path, text)


def test_plain_placeholders_and_literal_braces_load(tmp_path):
    argv = '["{python}", "{input.reference.parent}/", "{pipeline.pixel3dmm}", "{{literal}}"]'
    catalog = _load(
        tmp_path, f'[pipelines.p]\nname = "P"\nroot = "/p"\n[[pipelines.p.steps]]\nname = "s"\nargv = {argv}\n'
    )
    assert catalog.pipeline("p").steps[0].argv[1] == "{input.reference.parent}/"


# --- unknown keys: one lookup, the nearest keys named, the facts as fields ------------------


def test_unknown_keys_name_the_nearest_ones(tmp_path):
    catalog = load_catalog()
    cases = [
        (lambda: catalog.pipeline("cap4"), "pipeline", "cap4", "cap4d"),
        (lambda: catalog.episode(99), "episode", "99", "Did you mean: 9?"),
        (lambda: catalog.version(11, "v9"), "version", "v9", "v8"),
        (lambda: catalog.licence("flam"), "licence", "flam", "flame"),
        (lambda: catalog.asset("flame2032"), "asset", "flame2032", "flame2023"),
    ]
    for lookup, kind, key, near in cases:
        with pytest.raises(UnknownKeyError) as err:
            lookup()
        assert err.value.fields["kind"] == kind and err.value.fields["key"] == key
        assert f"No {kind} named '{key}'" in str(err.value) and near in str(err.value)


def test_commands_report_unknown_pipelines_and_episodes(reg):
    for args, expected in [
        (("env", "cap4"), "No pipeline named 'cap4' in the catalog. Did you mean: cap4d?"),
        (("config", "pipelines.cap4.root", "/x"), "Did you mean: cap4d?"),
        (("versions", "episode", "99"), "No episode named '99'"),
        (("render", "episode", "11", "--version", "v9", "--dry-run"), "No version named 'v9' in episode 11"),
        (("fetch", "--missing", "--pipeline", "cap4"), "Did you mean: cap4d?"),
    ]:
        result = reg(*args)
        assert result.exit_code == 1 and expected in result.stderr, (args, result.output)
    code, doc = reg.json("versions", "episode", "99")
    assert doc["error"] == "UnknownKeyError" and doc["kind"] == "episode" and doc["key"] == "99"


# --- the catalog cache ----------------------------------------------------------------------


def test_cached_catalog_equals_the_parsed_one_field_for_field(tmp_path, monkeypatch):
    text = (
        '[assets.mine]\nname = "Mine"\nkind = "weights"\npipeline = "cap4d"\npath = "w/mine.ckpt"\n'
        f'filenames = ["mine.ckpt", "m.ckpt"]\nsize = 12\nsha256 = "{"a" * 64}"\nvalidator = "torch-ckpt"\n'
        'allow_globals = ["collections.OrderedDict"]\nchecks = { top_keys = ["state_dict"], min_tensors = 2, min_bytes = 9 }\n'
        'source = { huggingface = "o/r", file = "mine.ckpt", revision = "v1" }\n'
        '[assets.fixed]\nkind = "weights"\npath = "w/fixed.ckpt"\n'
        'source = { derived = ["mine"], command = ["{python}", "fix.py", "{input.mine}"], output = "{input.mine}", pipeline = "cap4d" }\n'
        '[pipelines.p]\nname = "P"\nroot = "/p"\nvenv = "/v"\nrepo = "https://r"\nrequires = ["mine"]\n'
        'environment = ["x 1"]\nnote = "n"\nenv = { A = "{root}" }\npackages = { torch = ">=2" }\nbinaries = ["ffmpeg"]\n'
        '[[pipelines.p.steps]]\nname = "s"\nargv = ["{python}", "{param.x}"]\nenv = { B = "1" }\nreads = ["mine"]\n'
        'outputs = ["{out}/o"]\n'
        '[episodes.99]\ntitle = "T"\ninputs = { audio = "mine" }\n'
        '[episodes.99.versions.v1]\npipeline = "p"\nstate = "candidate"\nrequires = ["fixed"]\n'
        'params = { x = "1", n = 2, f = 1.5, b = true }\nnote = "n"\ninputs = { extra = "fixed" }\n'
    )
    d = tmp_path / "manifests"
    d.mkdir()
    (d / "local.toml").write_text(text)
    cache = tmp_path / "cache" / "catalog.marshal"
    parsed = load_catalog(d, cache)
    monkeypatch.setattr(catalog_module, "_parse", lambda files: pytest.fail("the cache was not used"))
    cached = load_catalog(d, cache)
    assert cached == parsed
    assert cached.asset("mine").checks == {"top_keys": ["state_dict"], "min_tensors": 2, "min_bytes": 9}
    assert cached.version(99, "v1").params == {"x": "1", "n": 2, "f": 1.5, "b": True}
