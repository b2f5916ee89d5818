"""Finding the registry root, as git finds `.git`, and the handle every command works through."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from . import caches
from .errors import RegError

ROOT_DIRNAME = ".reg"


def find_root(explicit: str | None = None, cwd: Path | None = None) -> Path:
    """--root, else REG_HOME, else the nearest `.reg/` upwards, else the per-user data directory."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    if os.environ.get("REG_HOME"):
        return Path(os.environ["REG_HOME"]).expanduser().resolve()
    here = (cwd or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / ROOT_DIRNAME).is_dir():
            return d / ROOT_DIRNAME
    import platformdirs

    return Path(platformdirs.user_data_dir("reg", appauthor=False))


def init_root(where: Path) -> Path:
    root = where.resolve() / ROOT_DIRNAME
    root.mkdir(parents=True, exist_ok=True)
    return root


@dataclass
class Registry:
    """A registry root: database, object store, run folders, user manifests, media."""

    root: Path

    @property
    def database_url(self) -> str:
        if os.environ.get("REG_DATABASE_URL"):
            return os.environ["REG_DATABASE_URL"]
        db = self.root / "reg.db"
        if self.read_only:
            # Someone else's registry: open it read-only (SQLite reads a WAL database read-only when
            # its -shm file is readable), so reading commands work and writes fail cleanly.
            return f"sqlite:///file:{db}?mode=ro&uri=true"
        return f"sqlite:///{db}"

    @property
    def read_only(self) -> bool:
        """An existing SQLite registry this user cannot write (owned by someone else)."""
        db = self.root / "reg.db"
        return db.exists() and not (os.access(db, os.W_OK) and os.access(self.root, os.W_OK))

    @cached_property
    def engine(self):
        from .db import connect

        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegError(
                f"Cannot create the registry root {self.root}: {exc}. Pass --root or set REG_HOME to a writable folder."
            ) from None
        return connect(self.database_url)

    @cached_property
    def catalog(self):
        from .catalog import load_catalog

        return load_catalog(self.root / "manifests", self.root / "cache" / "catalog.marshal")

    @cached_property
    def store(self):
        from .store import ObjectStore

        return ObjectStore(self.root / "objects")

    @cached_property
    def state(self):
        """The registry's rows, seen from this machine (`reg.registry.state.State`)."""
        from .state import State

        return State(self.engine)

    @cached_property
    def settings(self) -> dict[str, str]:
        return self.state.settings()

    def pipeline_root(self, key: str) -> Path:
        return Path(self._roots[key])

    @cached_property
    def _roots(self) -> dict[str, str]:
        """Pipeline checkout roots after per-machine overrides, as strings (status joins 10,000 paths)."""
        return {
            k: os.path.expanduser(self.settings.get(f"pipelines.{k}.root") or p.root)
            for k, p in self.catalog.pipelines.items()
        }

    @property
    def media_root(self) -> Path:
        return Path(self.settings.get("media.root") or self.root / "media").expanduser()

    def placement(self, asset) -> str:
        """Where the pipeline loads the asset: its checkout + path, or media root, or an absolute path.
        A string, because status joins 10,000 of them and pathlib costs 10 us each."""
        p = asset.path
        if p[:1] in ("~", "/", "{"):  # rare: home-relative, absolute, or a library's cache root
            if p.startswith("{"):  # torch hub, Hugging Face hub: registry/caches.py
                p = caches.expand(p, self.cache_roots)
            p = os.path.expanduser(p)
            if os.path.isabs(p):
                return p
        base = self._roots[asset.pipeline] if asset.pipeline else self._media_root
        return f"{base}/{p}"  # a plain join: this runs once per catalogued file in every status

    @cached_property
    def cache_roots(self) -> dict[str, str]:
        return caches.roots(self.settings)

    def placement_path(self, asset) -> Path:
        return Path(self.placement(asset))

    @cached_property
    def assets_by_filename(self) -> dict[str, list]:
        """file name -> the assets that accept it: what `reg add` looks up, once per process."""
        index: dict[str, list] = {}
        for asset in self.catalog.assets.values():
            for name in asset.filenames:
                index.setdefault(name, []).append(asset)
        return index

    @cached_property
    def asset_by_placement(self) -> dict[str, object]:
        """absolute placement path -> asset (adopting a file copied in by hand)."""
        return {os.path.abspath(self.placement(a)): a for a in self.catalog.assets.values()}

    @cached_property
    def _media_root(self) -> str:
        return str(self.media_root)
