"""The catalog: what should exist, read from TOML manifests. Plain data; state lives in the database.

Shipped manifests (the `manifests` package) load first, then `<root>/manifests/*.toml`;
a later entry replaces an earlier one with the same key, so a team can override one asset
without copying the rest. Every entry is validated on load: a bad manifest raises
ManifestError naming the file, the key and what is wrong.
"""

from __future__ import annotations

import marshal
import os
import tomllib
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from .errors import ManifestError, UnknownKeyError

ASSET_KINDS = ("weights", "face-model", "aux-data", "media")
VALIDATORS = ("none", "flame-pkl", "bfm-mat", "torch-ckpt", "safetensors", "wav", "png")
VERSION_STATES = ("production", "candidate", "planned", "previous", "retired")


@dataclass(slots=True)
class Source:
    """Where an asset comes from; `type` decides who can act on it (a machine or a person)."""

    type: str
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


@dataclass(slots=True)
class Asset:
    key: str
    name: str
    kind: str
    path: str  # relative to the pipeline root, to <root>/media when no pipeline, or absolute/~
    source: Source
    pipeline: str = ""
    filenames: tuple[str, ...] = ()
    size: int | None = None
    sha256: str | None = None
    validator: str = "none"
    allow_globals: tuple[str, ...] = ()  # extra pickle globals this asset's validator accepts
    # What the content must hold, beyond its format: {"top_keys": [...], "min_tensors": N, "min_bytes": N}
    checks: dict = field(default_factory=dict)
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
    state: str
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

    def asset(self, key: str) -> Asset:
        try:
            return self.assets[key]
        except KeyError:
            raise UnknownKeyError(_unknown("asset", key, self.assets)) from None

    def licence_for(self, key: str) -> Licence:
        """A licence by its own key, or the licence of a gated asset key."""
        if key in self.licences:
            return self.licences[key]
        asset = self.assets.get(key)
        if asset and asset.source.type == "gated":
            return self.licences[asset.source.licence]
        raise UnknownKeyError(_unknown("licence", key, self.licences))

    def version_inputs(self, version: EpisodeVersion) -> list[str]:
        """Every asset key an episode version needs: pipeline assets, episode inputs, extras."""
        keys = list(self.pipelines[version.pipeline].requires)
        keys += self.episodes[version.episode].inputs.values()
        keys += version.inputs.values()
        keys += version.requires
        return list(dict.fromkeys(keys))

    def all_versions(self) -> list[EpisodeVersion]:
        return [v for e in self.episodes.values() for v in e.versions.values()]


def _unknown(what: str, key: str, known) -> str:
    import difflib

    near = difflib.get_close_matches(key, list(known), n=5, cutoff=0.4)
    hint = f" Did you mean: {', '.join(near)}?" if near else ""
    return f"No {what} named '{key}' in the catalog.{hint} `reg ls` lists the catalog."


def shipped_manifest_files() -> list[Path]:
    base = resources.files("reg.manifests")
    return sorted(Path(str(p)) for p in base.iterdir() if p.name.endswith(".toml"))


CACHE_FORMAT = 5  # bump when a dataclass above changes shape


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
            assets={
                k: Asset(
                    **{
                        **a,
                        "source": Source(
                            **{
                                **a["source"],
                                "inputs": tuple(a["source"]["inputs"]),
                                "command": tuple(a["source"]["command"]),
                            }
                        ),
                        "filenames": tuple(a["filenames"]),
                        "allow_globals": tuple(a["allow_globals"]),
                    }
                )
                for k, a in data["assets"].items()
            },
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


def _write_cache(cache_file: Path | None, signature: list, catalog: Catalog) -> None:
    if cache_file is None:
        return
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(marshal.dumps({"signature": signature, **asdict(catalog)}))
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
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ManifestError(f"Manifest {path} cannot be read: {exc}. Fix the TOML syntax.") from None
        catalog.files.append(str(path))
        _check_keys(path, "", data, {"assets", "licences", "pipelines", "episodes"})
        for key, entry in data.get("licences", {}).items():
            catalog.licences[key] = _licence(path, key, entry)
        for key, entry in data.get("pipelines", {}).items():
            catalog.pipelines[key] = _pipeline(path, key, entry)
        for key, entry in data.get("assets", {}).items():
            catalog.assets[key] = _asset(path, key, entry)
        for key, entry in data.get("episodes", {}).items():
            raw_episodes[str(key)] = (str(path), entry)
    for key, (path, entry) in raw_episodes.items():
        catalog.episodes[key] = _episode(path, key, entry)
    _check_references(catalog)
    return catalog


# --- parsing and validation of single entries -------------------------------------------


def _fail(path, key, message) -> ManifestError:
    return ManifestError(
        f"Manifest {path}, entry '{key}': {message}. Fix that entry (see docs/DESIGN.md, 'Manifests')."
    )


def _check_keys(path, key, entry, allowed: set[str], required: set[str] = frozenset()):
    if not isinstance(entry, dict):
        raise _fail(path, key, f"expected a table, found {type(entry).__name__}")
    unknown = set(entry) - allowed
    if unknown:
        raise _fail(path, key, f"unknown field(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(allowed))}")
    missing = required - set(entry)
    if missing:
        raise _fail(path, key, f"missing required field(s) {', '.join(sorted(missing))}")


def _choice(path, key, name, value, choices):
    if value not in choices:
        raise _fail(path, key, f"{name} = {value!r} is not one of {', '.join(choices)}")
    return value


def _strings(path, key, name, value) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(path, key, f"{name} must be a list of strings")
    return tuple(value)


def _licence(path, key, e) -> Licence:
    _check_keys(path, key, e, {"name", "licence", "register", "downloads", "note"}, {"name", "licence", "register"})
    return Licence(
        key,
        e["name"],
        e["licence"],
        e["register"],
        _strings(path, key, "downloads", e.get("downloads", [])),
        e.get("note", ""),
    )


def _pipeline(path, key, e) -> Pipeline:
    _check_keys(
        path,
        key,
        e,
        {"name", "root", "venv", "repo", "requires", "environment", "note", "env", "steps", "packages", "binaries"},
        {"name", "root"},
    )
    packages = e.get("packages", {})
    if not isinstance(packages, dict) or not all(isinstance(v, str) for v in packages.values()):
        raise _fail(path, key, 'packages must map a distribution to a version specifier, e.g. { gsplat = "==1.5.3" }')
    for name, spec in packages.items():
        try:
            from packaging.specifiers import SpecifierSet

            SpecifierSet(spec)
        except ValueError:
            raise _fail(path, key, f"packages.{name} = {spec!r} is not a PEP 440 version specifier") from None
    steps = []
    for i, st in enumerate(e.get("steps", [])):
        where = f"{key}.steps[{i}]"
        _check_keys(path, where, st, {"name", "argv", "env", "reads", "outputs"}, {"name", "argv"})
        steps.append(
            StepSpec(
                st["name"],
                _strings(path, where, "argv", st["argv"]),
                dict(st.get("env", {})),
                _strings(path, where, "reads", st.get("reads", [])),
                _strings(path, where, "outputs", st.get("outputs", [])),
            )
        )
    return Pipeline(
        key,
        e["name"],
        e["root"],
        e.get("venv", ""),
        e.get("repo", ""),
        _strings(path, key, "requires", e.get("requires", [])),
        _strings(path, key, "environment", e.get("environment", [])),
        e.get("note", ""),
        str(path),
        dict(e.get("env", {})),
        tuple(steps),
        dict(packages),
        _strings(path, key, "binaries", e.get("binaries", [])),
    )


def _source(path, key, s) -> Source:
    _check_keys(
        path,
        key,
        s,
        {
            "huggingface",
            "file",
            "revision",
            "gated",
            "archive",
            "url",
            "owner",
            "derived",
            "command",
            "output",
            "pipeline",
        },
    )
    if "huggingface" in s:
        if "file" not in s:
            raise _fail(path, key, "a huggingface source needs `file`")
        return Source(
            "huggingface",
            repo=s["huggingface"],
            file=s["file"],
            revision=s.get("revision", "main"),
            url=f"https://huggingface.co/{s['huggingface']}/resolve/{s.get('revision', 'main')}/{s['file']}",
        )
    if "gated" in s:
        return Source("gated", licence=s["gated"], archive=s.get("archive", ""))
    if "url" in s:
        return Source("url", url=s["url"])
    if "owner" in s:
        return Source("owner", hint=s["owner"])
    if "derived" in s:
        if "command" not in s or "output" not in s:
            raise _fail(path, key, "a derived source needs `command` (argv) and `output`")
        return Source(
            "derived",
            inputs=_strings(path, key, "derived", s["derived"]),
            command=_strings(path, key, "command", s["command"]),
            output=s["output"],
            pipeline=s.get("pipeline", ""),
        )
    raise _fail(path, key, "source needs one of huggingface, gated, url, owner, derived")


def _asset(path, key, e) -> Asset:
    allowed = {
        "name",
        "kind",
        "pipeline",
        "path",
        "filenames",
        "size",
        "sha256",
        "validator",
        "source",
        "allow_globals",
        "checks",
    }
    _check_keys(path, key, e, allowed, {"kind", "path", "source"})
    sha = e.get("sha256")
    if sha is not None and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
        raise _fail(path, key, "sha256 must be 64 lowercase hex digits")
    size = e.get("size")
    if size is not None and (not isinstance(size, int) or size < 0):
        raise _fail(path, key, "size must be a non-negative integer (bytes)")
    rel = e["path"]
    if ".." in Path(rel).parts:
        raise _fail(path, key, f"path {rel!r} must not contain '..'")
    # A derived file is made by reg, not dropped in: no file name identifies it unless declared.
    default_names = [] if "derived" in e["source"] else [Path(rel).name]
    filenames = _strings(path, key, "filenames", e.get("filenames", default_names))
    return Asset(
        key=key,
        name=e.get("name", key),
        kind=_choice(path, key, "kind", e["kind"], ASSET_KINDS),
        path=rel,
        source=_source(path, key, e["source"]),
        pipeline=e.get("pipeline", ""),
        filenames=filenames,
        size=size,
        sha256=sha,
        validator=_choice(path, key, "validator", e.get("validator", "none"), VALIDATORS),
        allow_globals=_strings(path, key, "allow_globals", e.get("allow_globals", [])),
        checks=_checks(path, key, e.get("checks", {})),
        manifest=str(path),
    )


def _episode(path, key, e) -> Episode:
    _check_keys(path, key, e, {"title", "inputs", "versions"}, {"versions"})
    versions = {}
    for vkey, v in e["versions"].items():
        where = f"{key}.versions.{vkey}"
        _check_keys(
            path, where, v, {"pipeline", "state", "requires", "params", "note", "inputs"}, {"pipeline", "state"}
        )
        versions[vkey] = EpisodeVersion(
            key,
            vkey,
            v["pipeline"],
            _choice(path, where, "state", v["state"], VERSION_STATES),
            _strings(path, where, "requires", v.get("requires", [])),
            dict(v.get("params", {})),
            v.get("note", ""),
            dict(v.get("inputs", {})),
        )
    inputs = e.get("inputs", {})
    if not all(isinstance(v, str) for v in inputs.values()):
        raise _fail(path, key, "inputs must map a role to an asset key")
    return Episode(key, e.get("title", f"Episode {key}"), dict(inputs), versions, str(path))


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


def _checks(path, key, checks) -> dict:
    """`checks = { top_keys = [...], min_tensors = N, min_bytes = N }`: what a right file must hold."""
    if not isinstance(checks, dict):
        raise _fail(path, key, "checks must be a table, e.g. checks = { top_keys = ['state_dict'], min_tensors = 10 }")
    _check_keys(path, f"{key}.checks", checks, {"top_keys", "min_tensors", "min_bytes"}, set())
    out: dict = {}
    if "top_keys" in checks:
        out["top_keys"] = list(_strings(path, key, "checks.top_keys", checks["top_keys"]))
    for name in ("min_tensors", "min_bytes"):
        if name in checks:
            value = checks[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _fail(path, key, f"checks.{name} must be a non-negative integer")
            out[name] = value
    return out
