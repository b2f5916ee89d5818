"""Generated manifests: valid ones, mutated (fields dropped, wrong types, wrong nesting, huge or
odd values, unknown keys). Loading one gives a catalog or a ManifestError naming the file:
never another exception, and `reg status` never shows a traceback."""

from __future__ import annotations

import copy
import datetime
import json
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reg.registry.catalog import load_catalog
from reg.registry.errors import ManifestError

VALID = {
    "licences": {"fzlic": {"name": "L", "licence": "research", "register": "https://l", "downloads": ["L.zip"]}},
    "pipelines": {
        "fz": {
            "name": "Fuzz",
            "root": "/tmp/fz",
            "venv": "/tmp/fz-venv",
            "requires": ["fz_hf"],
            "env": {"PYTHONPATH": "{root}"},
            "packages": {"torch": ">=2"},
            "binaries": ["ffmpeg"],
            "steps": [
                {"name": "run", "argv": ["{python}", "run.py", "{input.audio}", "{param.n}"], "outputs": ["{out}/o"]}
            ],
        }
    },
    "assets": {
        "fz_hf": {
            "kind": "weights",
            "pipeline": "fz",
            "path": "w/a.ckpt",
            "size": 10,
            "sha256": "a" * 64,
            "validator": "torch-ckpt",
            "checks": {"top_keys": ["state_dict"], "min_tensors": 1},
            "source": {"huggingface": "o/r", "file": "a.ckpt", "revision": "main"},
        },
        "fz_gated": {"kind": "face-model", "path": "m.pkl", "source": {"gated": "fzlic", "archive": "L.zip"}},
        "fz_url": {"kind": "aux-data", "path": "x.npy", "filenames": ["x.npy"], "source": {"url": "https://x/x.npy"}},
        "fz_audio": {"kind": "media", "path": "900/audio.wav", "validator": "wav", "source": {"owner": "the audio"}},
        "fz_fixed": {
            "kind": "face-model",
            "path": "fixed.pkl",
            "source": {
                "derived": ["fz_gated"],
                "command": ["{python}", "fix.py", "{input.fz_gated}"],
                "output": "{work}/o",
                "pipeline": "fz",
            },
        },
    },
    "episodes": {
        "900": {
            "title": "Fuzz",
            "inputs": {"audio": "fz_audio"},
            "versions": {"v1": {"pipeline": "fz", "state": "candidate", "params": {"n": 3}, "requires": ["fz_fixed"]}},
        }
    },
}


class Raw:
    """TOML text put in as it is (deeply nested arrays)."""

    def __init__(self, toml: str) -> None:
        self.toml = toml

    def __repr__(self) -> str:
        return f"Raw({self.toml[:20]!r}...)"


def _toml(value) -> str:
    """A value as inline TOML; the whole document is one `key = value` line per top-level table."""
    if isinstance(value, Raw):
        return value.toml
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{ " + ", ".join(f"{_string(k)} = {_toml(v)}" for k, v in value.items()) + " }"


def _string(s: str) -> str:
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")  # JSON escapes are TOML's, DEL aside


def document(data: dict) -> str:
    return "".join(f"{json.dumps(k)} = {_toml(v)}\n" for k, v in data.items())


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
odd = st.one_of(
    st.integers(),
    st.integers(min_value=2**63, max_value=2**80),  # too big for TOML: a syntax error, named as such
    st.booleans(),
    st.floats(),
    text,
    st.sampled_from(["", "weights", "candidate", "fz", "fz_hf", "..", "../../etc", "a\x00b", "x" * 100_000]),
    st.sampled_from(["{root:>2000000000}", "{0}", "{}", "{root!r}", "{input[0]}", "{input.__class__}", "{", "}"]),
    st.dates(),
    st.integers(1, 3000).map(lambda n: Raw("[" * n + "]" * n)),
    st.lists(st.one_of(st.integers(), text), max_size=3),
    st.dictionaries(text, st.one_of(st.integers(), text), max_size=3),
)


def _places(node, at=()):
    """Every (container, key) pair in the document: where a mutation can land."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        yield node, k
        yield from _places(v, (*at, k))


@st.composite
def manifests(draw) -> dict:
    data = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(0, 3))):
        places = list(_places(data))[::-1]  # leaves first: shrinking and small draws favour them
        how = draw(st.sampled_from(["drop", "replace", "replace", "unknown", "wrap", "top"]))
        if how == "top" or not places:
            data[draw(st.sampled_from(["assets", "episodes", "pipelines", "licences", "other"]))] = draw(odd)
            continue
        node, key = draw(st.sampled_from(places))
        if how == "drop":
            del node[key]
        elif how == "replace":
            node[key] = draw(odd)
        elif how == "unknown" and isinstance(node, dict):
            node[draw(text)] = draw(odd)
        elif how == "wrap":
            node[key] = draw(st.sampled_from([[node[key]], {"x": node[key]}]))
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifests())
def test_generated_manifests_load_or_name_the_file(data):
    with tempfile.TemporaryDirectory() as d:
        folder, cache = Path(d) / "manifests", Path(d) / "cache" / "catalog.marshal"
        folder.mkdir()
        path = folder / "fuzz.toml"
        path.write_text(document(data))
        try:
            catalog = load_catalog(folder, cache)
        except ManifestError as exc:
            assert str(path) in str(exc)
            return
        assert load_catalog(folder, cache) == catalog  # the cached copy holds every field


@pytest.mark.parametrize(
    "text",
    [
        document({**VALID, "assets": 5}),
        document({**VALID, "episodes": {"900": {"versions": [1, 2]}}}),
        'pipelines = { fz = { name = "F", root = "/r", steps = [{ name = "s", argv = ["{root:>2000000000}"] }] } }\n',
        "assets = " + "[" * 5000 + "]" * 5000 + "\n",
    ],
)
def test_status_shows_one_paragraph_for_a_bad_manifest(reg, text):
    path = reg.root / "manifests" / "fuzz.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    result = reg("status")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: Manifest {path}") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output
