"""`reg fetch`: download open weights with the real huggingface_hub client, verified as they arrive.

The bytes stream through `huggingface_hub.file_download.http_get` (the client's own resumable
download, with its retries and progress bar) into a file in the store's temp folder that hashes
every chunk as it is written, so checking the Hub's published sha256 costs no second pass.
Then the staged file takes the same road as `reg add` (`ingest.store_and_place`).

An interrupted download leaves `objects/tmp/fetch-<key>-<etag>.part`; the next fetch of the same
remote file hashes that prefix once and asks the server for the rest (HTTP Range).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .catalog import Asset
from .errors import IntegrityError, RegError
from .ingest import AddResult, Candidate, Progress, null_progress, store_and_place
from .store import Staged, hash_stream

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class OfflineError(RegError):
    """A download was needed but offline mode is on."""


class SourceGatedError(RegError):
    """The Hub answered 401/403 'GatedRepo': a person must accept the conditions."""


class DownloadError(RegError):
    """The server or network failed; what was received is kept for a resume."""


@dataclass
class Remote:
    """What the source says about the file before we download it."""

    url: str
    sha256: str | None  # published by the Hub for LFS files, or pinned by the manifest
    size: int | None
    etag: str
    headers: dict
    revision: str = ""


class HashingFile:
    """The file object http_get writes to: every chunk is hashed on its way to disk.

    Hashing runs in its own thread (hashlib releases the GIL), fed through a small bounded queue,
    so on a multi-core machine verification overlaps the download instead of adding to it.
    http_get may rewind and truncate when a server ignores a Range request; then the running
    hash is void and `rewound` asks for one full rehash at the end (rare, and still correct).
    """

    WRITEBACK_EVERY = 64 << 20

    def __init__(self, f, digest):
        import queue
        import threading

        self.f, self.digest, self.rewound = f, digest, False
        self._chunks: queue.Queue = queue.Queue(maxsize=8)
        self._thread = threading.Thread(target=self._hash, daemon=True)
        self._thread.start()
        self._written = self._flushed = f.tell()

    def _hash(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            if isinstance(chunk, tuple):  # (start, length): ask the kernel to begin writing it out
                start_writeback(self.f.fileno(), *chunk)
            else:
                self.digest.update(chunk)

    def write(self, data) -> int:
        self._chunks.put(bytes(data))
        n = self.f.write(data)
        self._written += n
        if self._written - self._flushed >= self.WRITEBACK_EVERY:
            # Start writeback as we go (the final fsync then has little left to do), from the
            # hashing thread so the download never waits for the disk.
            self.f.flush()
            self._chunks.put((self._flushed, self._written - self._flushed))
            self._flushed = self._written
        return n

    def hexdigest(self) -> str:
        """Wait for the hasher to catch up; the sha256 of everything written."""
        self._chunks.put(None)
        self._thread.join()
        return self.digest.hexdigest()

    def tell(self) -> int:
        return self.f.tell()

    def seek(self, pos: int, whence: int = 0) -> int:
        if (pos, whence) != (self.f.tell(), 0):
            self.rewound = True
        return self.f.seek(pos, whence)

    def truncate(self, size: int | None = None) -> int:
        self.rewound = True
        return self.f.truncate(size)


def start_writeback(fd: int, start: int, length: int) -> None:
    """Linux sync_file_range(SYNC_FILE_RANGE_WRITE): begin writing a range out, without waiting.
    Elsewhere (or if libc lacks it) a no-op: the fsync before commit still makes the file durable."""
    global _sync_file_range
    if _sync_file_range is None:
        try:
            import ctypes

            fn = ctypes.CDLL(None, use_errno=True).sync_file_range
            fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
            _sync_file_range = fn
        except (OSError, AttributeError):
            _sync_file_range = False
    if _sync_file_range:
        _sync_file_range(fd, start, length, 2)  # 2 = SYNC_FILE_RANGE_WRITE


_sync_file_range = None


def is_offline(offline: bool) -> bool:
    return offline or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def fetchable(asset: Asset) -> bool:
    return asset.source.type in ("huggingface", "url")


def missing_keys(reg, episode: str | None = None, version: str | None = None, pipeline: str | None = None) -> list[str]:
    """Machine-fetchable assets that are not verified, for one episode version, one pipeline, or all."""
    from .status import asset_states

    catalog = reg.catalog
    if episode is not None:
        ep = catalog.episode(episode)
        versions = [catalog.version(episode, version)] if version else list(ep.versions.values())
        keys = [k for v in versions for k in catalog.version_inputs(v)]
    elif pipeline is not None:
        keys = list(catalog.pipeline(pipeline).requires)
    else:
        keys = list(catalog.assets)
    states = asset_states(reg)
    return [k for k in dict.fromkeys(keys) if fetchable(catalog.assets[k]) and states[k]["state"] != "verified"]


def fetch(
    reg,
    keys: list[str],
    offline: bool = False,
    link: str = "copy",
    progress: Progress = null_progress,
    quiet: bool = False,
) -> list[AddResult]:
    """Fetch each asset; stops at the first failure (earlier ones stay registered)."""
    assets = [reg.catalog.asset(k) for k in keys]
    for a in assets:
        if not fetchable(a):
            how = (
                f"register for {reg.catalog.licences[a.source.licence].name}"
                if a.source.type == "gated"
                else "provide the file yourself"
            )
            raise RegError(
                f"'{a.key}' cannot be downloaded by reg ({a.source.type} source): {how}, then "
                f"`reg add FILE --as {a.key}`. `reg status` shows the steps."
            )
    if quiet:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    return [r for a in assets for r in _fetch_one(reg, a, offline, link, progress)]


def _fetch_one(reg, asset: Asset, offline: bool, link: str, progress: Progress) -> list[AddResult]:
    registered = reg.state.asset_records()
    rec = registered.get(asset.key)
    if rec and rec.state == "verified" and _unchanged(rec):
        return [
            AddResult(
                asset.key,
                rec.sha256,
                rec.fp_size,
                rec.placed_path,
                rec.link_mode,
                False,
                "already present and verified: nothing to fetch",
                "the registry",
            )
        ]
    known = (rec.sha256 if rec else None) or asset.sha256
    if known and reg.store.has(known):  # already stored (e.g. placement lost): no network needed
        staged = reg.store.stage_file(reg.store.object_path(known))
        return store_and_place(
            reg, [(Candidate(asset, f"store object {known}"), staged)], None, None, False, link, progress, registered
        )
    if is_offline(offline):
        raise OfflineError(
            f"Cannot fetch '{asset.key}' ({asset.name}): offline mode is on (HF_HUB_OFFLINE=1 or "
            "--offline) and the file is not in the store. Fetch it on a connected machine, or copy "
            f"the file here and run `reg add FILE --as {asset.key}`."
        )
    remote = _resolve(reg, asset)
    staged = _download(reg, asset, remote)
    label = remote.url + (f" @ {remote.revision}" if remote.revision else "")
    try:
        return store_and_place(reg, [(Candidate(asset, label), staged)], None, None, False, link, progress, registered)
    finally:
        staged.discard()


def _unchanged(rec) -> bool:
    from .store import Fingerprint

    try:
        return Fingerprint.of(Path(rec.placed_path)).matches(rec.fingerprint)
    except OSError:
        return False


def _resolve(reg, asset: Asset) -> Remote:
    """Ask the source for the download URL, the published sha256 and the size (one HEAD for the Hub)."""
    src = asset.source
    if src.type == "url":
        return Remote(_mirrored(reg, src.url), asset.sha256, asset.size, asset.sha256 or "noetag", {})
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.utils import build_hf_headers

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    url = hf_hub_url(src.repo, src.file, revision=src.revision, endpoint=endpoint)
    try:
        meta = get_hf_file_metadata(url, endpoint=endpoint)
    except GatedRepoError:
        page = f"{endpoint}/{src.repo}"
        reg.state.set_source_gate(asset.key, page)
        raise SourceGatedError(
            f"Hugging Face refused '{asset.key}': {src.repo} is a gated repository. Open {page}, accept its "
            "conditions with your account, log in here (`hf auth login`, or set HF_TOKEN), then run "
            f"`reg fetch {asset.key}` again. `reg status` lists this as an owner action."
        ) from None
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as exc:
        raise RegError(
            f"Hugging Face has no {src.file} at {src.repo}@{src.revision} for '{asset.key}' "
            f"({type(exc).__name__}). Fix the source of '{asset.key}' in {asset.manifest}, or log in "
            "if the repository is private."
        ) from None
    except Exception as exc:  # 5xx, DNS, TLS, refused: the transport's errors differ by client version (httpx, httpx2)
        raise DownloadError(
            f"Cannot reach {endpoint} for '{asset.key}': {exc}. Check the network (or HF_ENDPOINT), "
            "or use --offline to see what is missing without trying."
        ) from None
    etag = (meta.etag or "").strip('"')
    published = etag if SHA256_RE.match(etag) else None  # the Hub's etag of an LFS file is its sha256
    if published and asset.sha256 and published != asset.sha256:
        raise IntegrityError(
            f"The Hub publishes sha256 {published} for {src.repo}/{src.file} but {asset.manifest} "
            f"pins {asset.sha256} for '{asset.key}'. The remote file changed: pin a commit "
            "revision in the manifest, or update the pinned sha256 if the new file is intended."
        )
    return Remote(
        meta.location or url,
        asset.sha256 or published,
        meta.size,
        etag or "noetag",
        build_hf_headers(),
        meta.commit_hash or "",
    )


def _mirrored(reg, url: str) -> str:
    """`reg config mirrors.<host> BASE` serves a host's files from an internal mirror."""
    parts = urlsplit(url)
    base = reg.settings.get(f"mirrors.{parts.netloc}")
    return base.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "") if base else url


def _download(reg, asset: Asset, remote: Remote) -> Staged:
    from huggingface_hub.file_download import http_get

    tmp_dir = reg.store.tmp
    tmp_dir.mkdir(parents=True, exist_ok=True)
    part = tmp_dir / f"fetch-{asset.key}-{re.sub(r'[^0-9A-Za-z]', '', remote.etag)[:64]}.part"
    for stale in tmp_dir.glob(f"fetch-{asset.key}-*.part"):
        if stale != part:
            stale.unlink()  # a partial download of an older remote version is useless
    digest = hashlib.sha256()
    with open(part, "r+b" if part.exists() else "w+b") as f:
        hash_stream(f, digest=digest)  # an interrupted download's bytes, hashed once; leaves f at the end
        resume = f.tell()
        writer = HashingFile(f, digest)
        try:
            http_get(
                remote.url,
                writer,
                resume_size=resume,
                headers=remote.headers,
                expected_size=remote.size,
                displayed_filename=Path(asset.path).name,
            )
        except Exception as exc:
            writer.hexdigest()  # stop the hasher thread
            f.flush()
            got = part.stat().st_size
            raise DownloadError(
                f"The download of '{asset.key}' from {remote.url} stopped after {got} bytes "
                f"({type(exc).__name__}: {exc}). Run `reg fetch {asset.key}` again to resume from "
                "there."
            ) from None
        f.flush()
        os.fsync(f.fileno())
    sha = writer.hexdigest()
    if writer.rewound:
        from .store import hash_file

        sha = hash_file(part)[0]
    size = part.stat().st_size
    if remote.sha256 and sha != remote.sha256:
        part.unlink()
        raise IntegrityError(
            f"The download of '{asset.key}' from {remote.url} has sha256 {sha}, but {remote.sha256} "
            "was published/pinned for it. Nothing was stored or placed; the partial file is "
            "deleted. Retry later; if it persists, the remote file or the manifest is wrong."
        )
    return Staged(part, sha, size, "download")
