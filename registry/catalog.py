"""The catalog: what should exist, read from TOML manifests. Plain data; state lives in the database.

Shipped manifests (the `manifests` package) load first, then `<root>/manifests/*.toml`;
a later entry replaces an earlier one with the same key, so a team can override one asset
without copying the rest. Every entry is checked on load against the field tables below
(`LICENCE`, `PIPELINE`, ...): a bad manifest raises ManifestError naming the file, the entry
and what is wrong, never a traceback from deeper down.
"""

from __future__ import annotations

import marshal
import os
import re
import reprlib
import string
import tomllib
import types
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from .errors import ManifestError, UnknownKeyError

# The values are strings on purpose: they appear in JSON output and in the database.
AssetKind = Literal["weights", "face-model", "aux-data", "media"]
Validator = Literal[
    "none", "flame-pkl", "bfm-mat", "torch-ckpt", "safetensors", "wav", "png", "npy", "onnx", "tar", "tf-pb"
]
VersionState = Literal["production", "candidate", "planned", "previous", "retired"]
SourceType = Literal["huggingface", "gated", "url", "owner", "derived"]

ASSET_KINDS: tuple[str, ...] = get_args(AssetKind)
VALIDATORS: tuple[str, ...] = get_args(Validator)
VERSION_STATES: tuple[str, ...] = get_args(VersionState)
SOURCE_TYPES: tuple[str, ...] = get_args(SourceType)


@dataclass(slots=True)
class Source:
    """Where an asset comes from; `type` decides who can act on it (a machine or a person)."""

    type: SourceType
    repo: str = ""  # huggingface
    file: str = ""  # huggingface
    revision: str = "main"  # huggingface
    licence: str = ""  # gated
    archive: str = ""  # gated: the download the file arrives in, e.g. FLAME2023.zip
    url: str = ""  # url (also a human-readable pointer for others)
    hint: str = ""  # owner: what the owner provides
    inputs: tuple[str, ...] = ()  # derived: the assets the command reads
    command: tuple[str, ...] = ()  # derived: argv template ({python}, {root}, {work}, {input.KEY})
    output: str = ""  # derived: the file the command leaves, e.g. "{input.KEY}" for an in-place fix
    pipeline: str = ""  # derived: whose checkout and virtualenv run the command
    member: str = ""  # url, gdrive: the archive member (zip or tar) that is the asset
    gdrive: str = ""  # gdrive: the Google Drive file id (`url` is then its direct-download form)
    hub_cache: bool = False  # huggingface: lands in the Hub cache layout, where from_pretrained looks
    commit: str = ""  # huggingface: the commit the revision must resolve to (`reg pin` prints it)


@dataclass(slots=True)
class Asset:
    key: str
    name: str
    kind: AssetKind
    path: str  # relative to the pipeline root, to <root>/media when no pipeline, or absolute/~
    source: Source
    pipeline: str = ""
    filenames: tuple[str, ...] = ()
    size: int | None = None
    sha256: str | None = None
    validator: Validator = "none"
    allow_globals: tuple[str, ...] = ()  # extra pickle globals this asset's validator accepts
    # What the content must hold, beyond its format: {"top_keys": [...], "min_tensors": N, "min_bytes": N}
    checks: dict[str, Any] = field(default_factory=dict)
    manifest: str = ""


@dataclass(slots=True)
class Licence:
    key: str
    name: str
    licence: str
    register: str
    downloads: tuple[str, ...] = ()
    note: str = ""


@dataclass(slots=True)
class StepSpec:
    """One command of a pipeline, as an argv template (never a shell string).

    Placeholders: {python} (the venv's interpreter), {root} (the checkout), {run}/{out} (this
    run's folder and its output folder), {input.ROLE} (an episode input's path; a Path, so
    {input.reference.parent} works), {asset.KEY} (a catalogued file's path), {param.NAME},
    {episode}, {version}. `reads` names what the step reads (input.ROLE, asset keys, step:NAME);
    `outputs` the paths under {out} it writes.
    """

    name: str
    argv: tuple[str, ...]
    env: dict = field(default_factory=dict)
    reads: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()


@dataclass(slots=True)
class Pipeline:
    key: str
    name: str
    root: str
    venv: str = ""
    repo: str = ""
    requires: tuple[str, ...] = ()
    environment: tuple[str, ...] = ()
    note: str = ""
    manifest: str = ""
    env: dict = field(default_factory=dict)
    steps: tuple[StepSpec, ...] = ()
    packages: dict = field(default_factory=dict)  # distribution -> PEP 440 specifier ("" = any version)
    binaries: tuple[str, ...] = ()  # programs the steps call, looked up on the venv's PATH


@dataclass(slots=True)
class EpisodeVersion:
    episode: str
    version: str
    pipeline: str
    state: VersionState
    requires: tuple[str, ...] = ()
    params: dict = field(default_factory=dict)
    note: str = ""
    inputs: dict = field(default_factory=dict)  # role -> asset key, on top of the episode's inputs

    @property
    def label(self) -> str:
        return f"episode {self.episode} {self.version}"


@dataclass(slots=True)
class Episode:
    key: str
    title: str
    inputs: dict[str, str]  # role -> asset key (audio, reference)
    versions: dict[str, EpisodeVersion]
    manifest: str = ""


@dataclass(slots=True)
class Catalog:
    assets: dict[str, Asset] = field(default_factory=dict)
    licences: dict[str, Licence] = field(default_factory=dict)
    pipelines: dict[str, Pipeline] = field(default_factory=dict)
    episodes: dict[str, Episode] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    # One lookup for every kind of key, so an unknown one always names the nearest keys.
    def asset(self, key: str) -> Asset:
        return _lookup("asset", key, self.assets)

    def licence(self, key: str) -> Licence:
        return _lookup("licence", key, self.licences)

    def pipeline(self, key: str) -> Pipeline:
        return _lookup("pipeline", key, self.pipelines)

    def episode(self, number: str | int) -> Episode:
        return _lookup("episode", str(number), self.episodes)

    def version(self, number: str | int, version: str) -> EpisodeVersion:
        ep = self.episode(number)
        return _lookup("version", version, ep.versions, where=f"episode {ep.key}", episode=ep.key)

    def licence_for(self, key: str) -> Licence:
        """A licence by its own key, or the licence of a gated asset key."""
        asset = self.assets.get(key)
        if key not in self.licences and asset and asset.source.type == "gated":
            return self.licences[asset.source.licence]
        return self.licence(key)

    def version_inputs(self, version: EpisodeVersion) -> list[str]:
        """Every asset key an episode version needs: pipeline assets, episode inputs, extras."""
        keys = list(self.pipelines[version.pipeline].requires)
        keys += self.episodes[version.episode].inputs.values()
        keys += version.inputs.values()
        keys += version.requires
        return list(dict.fromkeys(keys))

    def all_versions(self) -> list[EpisodeVersion]:
        return [v for e in self.episodes.values() for v in e.versions.values()]


_HOW_TO_LIST = {
    "asset": "`reg ls` lists the assets.",
    "licence": "`reg ls` shows each asset's licence.",
    "version": "`reg versions episode N` lists an episode's versions; a new one goes under [episodes.N.versions.V].",
}


def _lookup(kind: str, key: str, known: dict[str, Any], where: str = "the catalog", **fields: Any) -> Any:
    """A catalog entry by key; an unknown key raises UnknownKeyError naming the nearest keys."""
    try:
        return known[key]
    except KeyError:
        pass
    import difflib

    near = difflib.get_close_matches(str(key), list(known), n=5, cutoff=0.4)
    if near:
        hint = f" Did you mean: {', '.join(near)}?"
    elif 0 < len(known) <= 20:
        hint = f" Known: {', '.join(known)}."
    else:
        hint = ""
    how = _HOW_TO_LIST.get(kind, "`reg status` lists the pipelines and episode versions.")
    raise UnknownKeyError(f"No {kind} named '{key}' in {where}.{hint} {how}", key=key, kind=kind, **fields)


def shipped_manifest_files() -> list[Path]:
    base = resources.files("reg.manifests")
    return sorted(Path(str(p)) for p in base.iterdir() if p.name.endswith(".toml"))


# bump when a dataclass above changes shape or validation tightens (7: asset rows; 8: cache placements)
CACHE_FORMAT = 8


def load_catalog(extra_dir: Path | None = None, cache_file: Path | None = None) -> Catalog:
    """Load shipped manifests, then the registry root's own (`extra_dir`), validated.

    Parsing and validating TOML costs ~0.4 s for 10,000 assets, so the validated result is
    kept in `cache_file`, keyed by every manifest's path, size and mtime_ns. The cache is
    marshal data (plain dicts, lists, strings, numbers; reg's own file, never a registered one):
    it loads 5x faster than the same JSON.
    """
    files = shipped_manifest_files()
    if extra_dir is not None and extra_dir.is_dir():
        files += sorted(extra_dir.glob("*.toml"))
    signature = [CACHE_FORMAT] + [[str(p), p.stat().st_mtime_ns, p.stat().st_size] for p in files]
    cached = _read_cache(cache_file, signature)
    if cached is not None:
        return cached
    catalog = _parse(files)
    _write_cache(cache_file, signature, catalog)
    return catalog


def _read_cache(cache_file: Path | None, signature: list) -> Catalog | None:
    if cache_file is None:
        return None
    try:
        data = marshal.loads(cache_file.read_bytes())
        if data["signature"] != signature:
            return None
        return Catalog(
            # rows of fields in declaration order: positional construction is several times
            # faster than keyword dicts, and status at 100,000 assets pays it on every run
            assets={row[0]: _asset_from_row(row) for row in data["assets"]},
            licences={k: Licence(**{**v, "downloads": tuple(v["downloads"])}) for k, v in data["licences"].items()},
            pipelines={
                k: Pipeline(
                    **{
                        **v,
                        "requires": tuple(v["requires"]),
                        "environment": tuple(v["environment"]),
                        "binaries": tuple(v["binaries"]),
                        "steps": tuple(
                            StepSpec(
                                **{
                                    **st,
                                    "argv": tuple(st["argv"]),
                                    "reads": tuple(st["reads"]),
                                    "outputs": tuple(st["outputs"]),
                                }
                            )
                            for st in v["steps"]
                        ),
                    }
                )
                for k, v in data["pipelines"].items()
            },
            episodes={
                k: Episode(
                    e["key"],
                    e["title"],
                    e["inputs"],
                    {vk: EpisodeVersion(**{**v, "requires": tuple(v["requires"])}) for vk, v in e["versions"].items()},
                    e["manifest"],
                )
                for k, e in data["episodes"].items()
            },
            files=data["files"],
        )
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return None  # missing or stale cache: parse the manifests


_ASSET_FIELDS = [f.name for f in fields(Asset)]
_SOURCE_FIELDS = [f.name for f in fields(Source)]
_SOURCE_AT = _ASSET_FIELDS.index("source")


def _asset_row(asset: Asset) -> tuple:
    row = [getattr(asset, name) for name in _ASSET_FIELDS]
    row[_SOURCE_AT] = tuple(getattr(asset.source, name) for name in _SOURCE_FIELDS)
    return tuple(row)


def _asset_from_row(row: tuple) -> Asset:
    values: list[Any] = list(row)
    values[_SOURCE_AT] = Source(*row[_SOURCE_AT])
    return Asset(*values)


def _write_cache(cache_file: Path | None, signature: list, catalog: Catalog) -> None:
    if cache_file is None:
        return
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
        rest = asdict(
            Catalog(
                licences=catalog.licences, pipelines=catalog.pipelines, episodes=catalog.episodes, files=catalog.files
            )
        )
        rest["assets"] = [_asset_row(a) for a in catalog.assets.values()]
        tmp.write_bytes(marshal.dumps({"signature": signature, **rest}))
        os.replace(tmp, cache_file)
    except OSError:
        pass  # a read-only root still works, only slower


def _parse(files: list[Path]) -> Catalog:
    catalog = Catalog()
    raw_episodes: dict[str, tuple[str, dict]] = {}
    for path in files:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except (OSError, ValueError, RecursionError) as exc:  # TOMLDecodeError, bad UTF-8, deep nesting
            problem = "it nests too deeply" if isinstance(exc, RecursionError) else exc
            raise ManifestError(f"Manifest {path} cannot be read: {problem}. Fix the TOML syntax.", path=path) from None
        catalog.files.append(str(path))
        data = _fields(path, "(top level)", data, TOP)
        for key, entry in data.get("licences", {}).items():
            catalog.licences[key] = _licence(path, key, entry)
        for key, entry in data.get("pipelines", {}).items():
            catalog.pipelines[key] = _pipeline(path, key, entry)
        for key, entry in data.get("assets", {}).items():
            catalog.assets[key] = _asset(path, key, entry)
        for key, entry in data.get("episodes", {}).items():
            raw_episodes[key] = (str(path), entry)
    for key, (p, entry) in raw_episodes.items():
        catalog.episodes[key] = _episode(p, key, entry)
    _check_references(catalog)
    return catalog


# --- the schema: one table of field -> type per section -----------------------------------
# A type is str (no NUL), int (never negative), float, bool, a Literal (its choices), list[T],
# dict[K, T], a union, or one of the marker types below. A bare `dict` (source, checks, steps,
# versions) is a nested table that its own section's table checks next.


class Key(str):
    """A catalog key (asset, pipeline, licence, episode, version): it ends up in file names and URLs."""


class EnvName(str):
    """An environment variable name (Popen refuses '=' in one)."""


class Template(str):
    """An argv template: {name} or {name.attr} placeholders only, no format spec or conversion.
    A spec is code-like power a manifest does not need ("{root:>2000000000}" asks for 2 GB)."""


_PATTERNS = {
    Key: (re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}"), "a key of letters, digits, '.', '_' and '-'"),
    EnvName: (re.compile(r"[A-Za-z_][A-Za-z0-9_]*"), "an environment variable name"),
}
_PLACEHOLDER = re.compile(r"[A-Za-z]\w*(\.[A-Za-z0-9][\w-]*)*")

Scalar = str | float | bool  # a float may be written as an integer, as in type hints

TOP = {
    "licences": dict[Key, dict],
    "pipelines": dict[Key, dict],
    "assets": dict[Key, dict],
    "episodes": dict[Key, dict],
}
LICENCE = {"name": str, "licence": str, "register": str, "downloads": list[str], "note": str}
PIPELINE = {
    "name": str,
    "root": str,
    "venv": str,
    "repo": str,
    "requires": list[str],
    "environment": list[str],
    "note": str,
    "env": dict[EnvName, Template],
    "steps": list[dict],
    "packages": dict[str, str],
    "binaries": list[str],
}
STEP = {
    "name": str,
    "argv": list[Template],
    "env": dict[EnvName, Template],
    "reads": list[str],
    "outputs": list[Template],
}
ASSET = {
    "name": str,
    "kind": AssetKind,
    "pipeline": str,
    "path": str,
    "filenames": list[str],
    "size": int,
    "sha256": str,
    "validator": Validator,
    "source": dict,
    "allow_globals": list[str],
    "checks": dict,
}
CHECKS = {
    "top_keys": list[str],
    "min_tensors": int,
    "min_bytes": int,
    "sha1": str,  # upstream publishes (and its code checks) a SHA-1, e.g. DeepSpeech's deepspeech_store.py
    "torch_hub_hash": bool,  # the file name carries a sha256 prefix, checked as torch.hub does
    "dtype": str,  # npy: the header's dtype ("<f4", "|O" for a pickled dict)
    "shape": list[int],  # npy: the header's shape ([] for a 0-d array, e.g. a saved dict)
}
# A source is one of these shapes, told apart by the field named like its type.
SOURCE: dict[str, dict[str, Any]] = {
    "huggingface": {"huggingface": str, "file": str, "revision": str, "hub_cache": bool, "commit": str},
    "gated": {"gated": str, "archive": str},
    "url": {"url": str, "member": str},
    "gdrive": {"gdrive": str, "member": str},
    "owner": {"owner": str},
    "derived": {"derived": list[str], "command": list[Template], "output": Template, "pipeline": str},
}
EPISODE = {"title": str, "inputs": dict[str, str], "versions": dict[Key, dict]}
VERSION = {
    "pipeline": str,
    "state": VersionState,
    "requires": list[str],
    "params": dict[str, Scalar],
    "note": str,
    "inputs": dict[str, str],
}
REQUIRED = {
    "licence": {"name", "licence", "register"},
    "pipeline": {"name", "root"},
    "step": {"name", "argv"},
    "asset": {"kind", "path", "source"},  # path: not with a Hub-cache source, which sets it
    "huggingface": {"file"},
    "derived": {"command", "output"},
    "episode": {"versions"},
    "version": {"pipeline", "state"},
}

_show = reprlib.Repr()
_show.maxstring, _show.maxother, _show.maxlevel = 60, 60, 2


def _problem(value: Any, typ: Any) -> str | None:
    """None if `value` fits `typ`, else what it should have been, for the message."""
    origin, args = get_origin(typ), get_args(typ)
    if origin is Literal:
        return None if value in args else f"one of {', '.join(args)}"
    if origin is list:
        if not isinstance(value, list):
            return _describe(typ)
        for item in value:
            if p := _problem(item, args[0]):
                return f"{_describe(typ)} ({_show.repr(item)} is not {p})"
        return None
    if origin is dict or typ is dict:
        if not isinstance(value, dict):
            return _describe(typ)
        for k, v in value.items() if args else ():
            if p := _problem(k, args[0]):
                return f"{_describe(typ)} (key {_show.repr(k)} is not {p})"
            if p := _problem(v, args[1]):
                return f"{_describe(typ)} ({_show.repr(k)} = {_show.repr(v)} is not {p})"
        return None
    if isinstance(typ, types.UnionType):
        return None if any(_problem(value, t) is None for t in args) else _describe(typ)
    if typ is bool:
        return None if isinstance(value, bool) else "true or false"
    if typ is float:
        return None if isinstance(value, int | float) and not isinstance(value, bool) else "a number"
    if typ is int:
        return None if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else _describe(typ)
    if not isinstance(value, str):
        return _describe(typ)
    if "\0" in value:
        return "a string without NUL characters"
    if typ in _PATTERNS:
        pattern, what = _PATTERNS[typ]
        return None if pattern.fullmatch(value) else what
    if typ is Template:
        return _template_problem(value)
    return None


def _describe(typ: Any, plural: bool = False) -> str:
    origin, args = get_origin(typ), get_args(typ)
    if origin is list:
        return f"a list of {_describe(args[0], plural=True)}"
    if origin is dict:
        return f"a table of {_describe(args[1], plural=True)}"
    if typ is dict:
        return "tables" if plural else "a table"
    if isinstance(typ, types.UnionType):
        return "strings, numbers or booleans" if plural else "a string, number or boolean"
    if typ is int:
        return "non-negative integers" if plural else "a non-negative integer"
    if typ in _PATTERNS:
        return _PATTERNS[typ][1]
    if typ is Template:
        return "argv templates" if plural else "an argv template"
    return "strings" if plural else "a string"


def _template_problem(template: str) -> str | None:
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"an argv template ({exc}; write {{{{ and }}}} for literal braces)"
    for _, name, spec, conversion in parts:
        if name is not None and (spec or conversion or not _PLACEHOLDER.fullmatch(name)):
            return (
                "an argv template: placeholders are {name} or {name.attr}, without a format spec (:...), "
                "conversion (!r) or index ([0])"
            )
    return None


def _fields(path, where: str, entry: Any, schema: dict[str, Any], required: set[str] | None = None) -> dict:
    """Check one table against its schema; give it back unchanged, now known to be well-typed."""
    if not isinstance(entry, dict):
        raise _fail(path, where, f"expected a table, found {_show.repr(entry)}")
    unknown = [k for k in entry if k not in schema]
    if unknown:
        names = ", ".join(_show.repr(k) for k in unknown[:5])
        raise _fail(path, where, f"unknown field(s) {names}; allowed: {', '.join(schema)}")
    missing = sorted((required or set()) - set(entry))
    if missing:
        raise _fail(path, where, f"missing required field(s) {', '.join(missing)}")
    for name, value in entry.items():
        if problem := _problem(value, schema[name]):
            raise _fail(path, where, f"{name} = {_show.repr(value)} is not {problem}")
    return entry


def _fail(path, where, message) -> ManifestError:
    return ManifestError(
        f"Manifest {path}, entry '{where}': {message}. Fix that entry (see README.md, 'Manifests').",
        path=path,
        entry=where,
    )


# --- single entries, from tables already checked against their schema --------------------


def _licence(path, key, e) -> Licence:
    e = _fields(path, key, e, LICENCE, REQUIRED["licence"])
    return Licence(key, e["name"], e["licence"], e["register"], tuple(e.get("downloads", [])), e.get("note", ""))


def _pipeline(path, key, e) -> Pipeline:
    e = _fields(path, key, e, PIPELINE, REQUIRED["pipeline"])
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    for name, spec in e.get("packages", {}).items():
        try:
            SpecifierSet(spec)
        except InvalidSpecifier:
            raise _fail(path, key, f"packages.{name} = {_show.repr(spec)} is not a PEP 440 version specifier") from None
    steps = []
    for i, st in enumerate(e.get("steps", [])):
        st = _fields(path, f"{key}.steps[{i}]", st, STEP, REQUIRED["step"])
        steps.append(
            StepSpec(
                st["name"],
                tuple(st["argv"]),
                dict(st.get("env", {})),
                tuple(st.get("reads", [])),
                tuple(st.get("outputs", [])),
            )
        )
    return Pipeline(
        key,
        e["name"],
        e["root"],
        e.get("venv", ""),
        e.get("repo", ""),
        tuple(e.get("requires", [])),
        tuple(e.get("environment", [])),
        e.get("note", ""),
        str(path),
        dict(e.get("env", {})),
        tuple(steps),
        dict(e.get("packages", {})),
        tuple(e.get("binaries", [])),
    )


def _source(path, key, s) -> Source:
    where = f"{key}.source"
    kinds = [t for t in SOURCE if isinstance(s, dict) and t in s]
    if len(kinds) != 1:
        found = f"found {', '.join(kinds)}" if kinds else f"found {_show.repr(s)}"
        raise _fail(path, where, f"a source needs exactly one of {', '.join(SOURCE)}; {found}")
    kind = kinds[0]
    s = _fields(path, where, s, SOURCE[kind], REQUIRED.get(kind))
    if kind == "huggingface":
        revision = s.get("revision", "main")
        url = f"https://huggingface.co/{s['huggingface']}/resolve/{revision}/{s['file']}"
        commit = s.get("commit", "")
        if commit and not re.fullmatch(r"[0-9a-f]{40}", commit):
            raise _fail(path, where, "commit must be 40 lowercase hex digits (a git commit id)")
        return Source(
            "huggingface",
            repo=s["huggingface"],
            file=s["file"],
            revision=revision,
            url=url,
            hub_cache=s.get("hub_cache", False),
            commit=commit,
        )
    if kind == "gated":
        return Source("gated", licence=s["gated"], archive=s.get("archive", ""))
    if kind == "url":
        return Source("url", url=s["url"], member=s.get("member", ""))
    if kind == "gdrive":
        if not re.fullmatch(r"[A-Za-z0-9_-]{10,100}", s["gdrive"]):
            raise _fail(path, where, "gdrive must be a Google Drive file id (letters, digits, '_' and '-')")
        # gdown's own URL (drive.google.com/uc) answers large files with a confirmation page that gdown
        # parses; this is the form that page submits, so a plain GET (and `reg config mirrors.<host>`) works.
        url = f"https://drive.usercontent.google.com/download?id={s['gdrive']}&export=download&confirm=t"
        return Source("url", url=url, gdrive=s["gdrive"], member=s.get("member", ""))
    if kind == "owner":
        return Source("owner", hint=s["owner"])
    return Source(
        "derived",
        inputs=tuple(s["derived"]),
        command=tuple(s["command"]),
        output=s["output"],
        pipeline=s.get("pipeline", ""),
    )


def _asset(path, key, e) -> Asset:
    in_hub_cache = isinstance(e, dict) and isinstance(e.get("source"), dict) and e["source"].get("hub_cache") is True
    e = _fields(path, key, e, ASSET, REQUIRED["asset"] - ({"path"} if in_hub_cache else set()))
    sha = e.get("sha256")
    if sha is not None and not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise _fail(path, key, "sha256 must be 64 lowercase hex digits")
    source = _source(path, key, e["source"])
    if in_hub_cache:
        if "path" in e:
            raise _fail(path, key, "a hub_cache source sets the path (the Hub cache layout); remove path")
        rel = hub_cache_path(source.repo, source.revision, source.file)
    else:
        rel = e["path"]
    if not rel or ".." in Path(rel).parts:
        raise _fail(path, key, f"path {_show.repr(rel)} must be a file path without '..'")
    if rel.startswith("{") and not rel.startswith(tuple(f"{{{c}}}/" for c in CACHE_ROOTS)):
        roots = ", ".join(f"{{{c}}}/" for c in CACHE_ROOTS)
        raise _fail(path, key, f"path {_show.repr(rel)} may start with a cache root only: {roots}")
    sha1 = e.get("checks", {}).get("sha1")
    if sha1 is not None and not re.fullmatch(r"[0-9a-f]{40}", str(sha1)):
        raise _fail(path, key, "checks.sha1 must be 40 lowercase hex digits")
    # A derived file is made by reg, not dropped in: no file name identifies it unless declared.
    default_names = [] if source.type == "derived" else [Path(rel).name]
    return Asset(
        key=key,
        name=e.get("name", key),
        kind=e["kind"],
        path=rel,
        source=source,
        pipeline=e.get("pipeline", ""),
        filenames=tuple(e.get("filenames", default_names)),
        size=e.get("size"),
        sha256=sha,
        validator=e.get("validator", "none"),
        allow_globals=tuple(e.get("allow_globals", [])),
        checks=dict(_fields(path, f"{key}.checks", e.get("checks", {}), CHECKS)),
        manifest=str(path),
    )


# A path may start with a library's cache root, resolved per machine (`registry/caches.py`).
CACHE_ROOTS = ("torch_home", "hf_hub_cache")


def hub_cache_path(repo: str, revision: str, file: str) -> str:
    """huggingface_hub's cache layout; the snapshot folder is the commit `refs/<revision>` names."""
    return f"{{hf_hub_cache}}/models--{repo.replace('/', '--')}/snapshots/{revision}/{file}"


def _episode(path, key, e) -> Episode:
    e = _fields(path, key, e, EPISODE, REQUIRED["episode"])
    versions = {}
    for vkey, v in e["versions"].items():
        v = _fields(path, f"{key}.versions.{vkey}", v, VERSION, REQUIRED["version"])
        versions[vkey] = EpisodeVersion(
            key,
            vkey,
            v["pipeline"],
            v["state"],
            tuple(v.get("requires", [])),
            dict(v.get("params", {})),
            v.get("note", ""),
            dict(v.get("inputs", {})),
        )
    return Episode(key, e.get("title", f"Episode {key}"), dict(e.get("inputs", {})), versions, str(path))


def _check_references(c: Catalog) -> None:
    """Every key an entry names must exist, so status never meets a dangling reference."""
    for a in c.assets.values():
        if a.pipeline and a.pipeline not in c.pipelines:
            raise _fail(a.manifest, a.key, f"pipeline '{a.pipeline}' is not defined")
        if a.source.type == "gated" and a.source.licence not in c.licences:
            raise _fail(a.manifest, a.key, f"licence '{a.source.licence}' is not defined")
        for k in a.source.inputs:
            if k not in c.assets or k == a.key:
                raise _fail(a.manifest, a.key, f"derived from unknown asset '{k}'")
        if a.source.type == "derived" and (a.source.pipeline or a.pipeline) not in c.pipelines:
            raise _fail(a.manifest, a.key, "a derived source needs a pipeline (its own or source.pipeline) to run in")
    for p in c.pipelines.values():
        for k in p.requires:
            if k not in c.assets:
                raise _fail(p.manifest, p.key, f"requires unknown asset '{k}'")
    for e in c.episodes.values():
        for role, k in e.inputs.items():
            if k not in c.assets:
                raise _fail(e.manifest, f"episodes.{e.key}", f"input {role} names unknown asset '{k}'")
        for v in e.versions.values():
            if v.pipeline not in c.pipelines:
                raise _fail(
                    e.manifest, f"episodes.{e.key}.versions.{v.version}", f"pipeline '{v.pipeline}' is not defined"
                )
            for k in (*v.requires, *v.inputs.values()):
                if k not in c.assets:
                    raise _fail(e.manifest, f"episodes.{e.key}.versions.{v.version}", f"requires unknown asset '{k}'")
