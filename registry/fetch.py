"""`reg fetch`: download open weights with the real huggingface_hub client, verified as they arrive.

The bytes stream through `huggingface_hub.file_download.http_get` (the client's own resumable
download, with its retries and progress bar) into a file in the store's temp folder that hashes
every chunk as it is written, so checking the Hub's published sha256 costs no second pass.
Then the staged file takes the same road as `reg add` (`ingest.store_and_place`).

An interrupted download leaves `objects/tmp/fetch-<quoted key>-<tag>.part` (the tag names the
remote version: its sha256 or ETag); the next fetch of the same version hashes that prefix once
and asks the server for the rest (HTTP Range). A resume is only trusted where something vouches
for it: the sha256 checked at the end, or, for a file nobody pinned, the server's answer to
If-Range (206 = same version; 200 = it changed, so the whole file comes again). Without either,
a failed download keeps nothing. Each key is fetched on its own: one failure never stops the
others, and the report says what happened to every key.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import quote, urlsplit

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
    """The server or network failed; what was received is kept for a resume when it can be trusted."""


class WebPageError(RegError):
    """A URL answered with a web page (a login, consent or error page) instead of the file."""


@dataclass
class Remote:
    """What the source says about the file before we download it."""

    url: str
    sha256: str | None  # published by the Hub for LFS files, or pinned by the manifest
    size: int | None
    tag: str  # names the partial file: bytes of one remote version never continue another's
    headers: dict
    revision: str = ""
    validator: str | None = None  # sent as If-Range: the server confirms a resume continues this version
    resumable: bool = True  # a partial may outlive this run (a sha256 or a strong ETag vouches for it)
    content_type: str = ""


@dataclass
class FetchReport:
    """What happened to each key: `reg fetch` goes on past a failure and says so at the end."""

    fetched: list[AddResult] = field(default_factory=list)
    present: list[AddResult] = field(default_factory=list)
    failed: list[RegError] = field(default_factory=list)  # each with fields["key"]


class HashingFile:
    """The file object http_get writes to: every chunk is hashed on its way to disk.

    Hashing runs in its own thread (hashlib releases the GIL), fed through a small bounded queue,
    so on a multi-core machine verification overlaps the download instead of adding to it.
    http_get may rewind and truncate when a server ignores a Range request; then the running
    hash is void and `rewound` asks for one full rehash at the end (rare, and still correct).
    """

    WRITEBACK_EVERY = 64 << 20

    def __init__(self, f: BinaryIO, digest: Any) -> None:
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


_sync_file_range: Any = None


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
    restart: bool = False,
) -> FetchReport:
    """Fetch each asset, going on past failures: one unreachable source must not hide what else could
    be had. An unknown key (a typo) refuses the whole command before anything is downloaded.
    `restart` first discards the keys' partial downloads."""
    assets = [reg.catalog.asset(k) for k in keys]
    if quiet:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    report = FetchReport()
    for a in assets:
        try:
            if restart:
                for part in _partials(reg, a.key):
                    part.unlink()
            present, results = _fetch_one(reg, a, offline, link, progress)
        except RegError as exc:
            exc.fields.setdefault("key", a.key)
            report.failed.append(exc)
            continue
        (report.present if present else report.fetched).extend(results)
    return report


def _fetch_one(reg, asset: Asset, offline: bool, link: str, progress: Progress) -> tuple[bool, list[AddResult]]:
    """(already present, results) for one asset."""
    if not fetchable(asset):
        how = (
            f"register for {reg.catalog.licences[asset.source.licence].name}"
            if asset.source.type == "gated"
            else "provide the file yourself"
        )
        raise RegError(
            f"'{asset.key}' cannot be downloaded by reg ({asset.source.type} source): {how}, then "
            f"`reg add FILE --as {asset.key}`. `reg status` shows the steps.",
            key=asset.key,
        )
    registered = reg.state.asset_records()
    rec = registered.get(asset.key)
    if rec and rec.state == "verified" and _unchanged(rec):
        summary = "already present and verified: nothing to fetch"
        return True, [
            AddResult(
                asset.key, rec.sha256, rec.fp_size, rec.placed_path, rec.link_mode, False, summary, "the registry"
            )
        ]
    known = (rec.sha256 if rec else None) or asset.sha256
    if (
        known and reg.store.has(known) and not asset.source.hub_cache
    ):  # already stored (e.g. placement lost): no network needed
        staged = reg.store.stage_file(reg.store.object_path(known))
        cand = Candidate(asset, f"store object {known}")
        return False, store_and_place(reg, [(cand, staged)], None, None, False, link, progress, registered)
    if is_offline(offline):
        raise OfflineError(
            f"Cannot fetch '{asset.key}' ({asset.name}): offline mode is on (HF_HUB_OFFLINE=1 or "
            "--offline) and the file is not in the store. Fetch it on a connected machine, or copy "
            f"the file here and run `reg add FILE --as {asset.key}`.",
            key=asset.key,
        )
    if asset.source.hub_cache:
        return False, _fetch_into_hub_cache(reg, asset, link, progress, registered)
    if asset.source.member:
        return False, _fetch_member(reg, asset, link, progress, registered)
    remote = _resolve(reg, asset)
    staged = _download(reg, asset, remote)
    label = remote.url + (f" @ {remote.revision}" if remote.revision else "")
    try:
        return False, store_and_place(
            reg, [(Candidate(asset, label), staged)], None, None, False, link, progress, registered
        )
    finally:
        staged.discard()


def _fetch_member(reg, asset: Asset, link: str, progress: Progress, registered: dict) -> list[AddResult]:
    """Download the archive (checked as a download: length, web page, resume), then take the one
    member that is the asset out of it; the asset's size, sha256 and validator apply to the member."""
    from dataclasses import replace

    from .ingest import stage

    url = _mirrored(reg, asset.source.url)
    name = Path(urlsplit(asset.source.url).path).name or "archive"
    archive = replace(asset, path=name, sha256=None, size=None, validator="none", checks={})
    staged_archive = _download(reg, archive, _head_url(archive, url))
    try:
        try:
            staged = stage(reg, staged_archive.path, asset.source.member, progress)
        except KeyError:
            from .archives import members

            found = ", ".join(members(staged_archive.path)[:10]) or "none"
            raise RegError(
                f"The archive {url} for '{asset.key}' has no member {asset.source.member!r} (members: {found}). "
                f"Fix source.member of '{asset.key}' in {asset.manifest}. Nothing was stored or placed.",
                key=asset.key,
                url=url,
            ) from None
    finally:
        staged_archive.discard()
    try:
        cand = Candidate(asset, f"{url}!{asset.source.member}", member=asset.source.member)
        return store_and_place(reg, [(cand, staged)], None, None, False, link, progress, registered)
    finally:
        staged.discard()


def _fetch_into_hub_cache(reg, asset: Asset, link: str, progress: Progress, registered: dict) -> list[AddResult]:
    """A Hub file that a pipeline loads with from_pretrained: huggingface_hub itself downloads it into
    its cache layout (blobs/, snapshots/<commit>/, refs/<revision>) under this machine's hub cache,
    so the pipeline finds it offline. reg then hashes and validates the snapshot file, keeps a copy
    in its store and records the snapshot path as the placement. A file that fails is removed from
    the cache again, so the pipeline cannot pick it up either."""
    from huggingface_hub import hf_hub_download

    src = asset.source
    remote = _resolve(reg, asset)  # the published sha256 and the commit the revision names
    if src.commit and remote.revision and remote.revision != src.commit:
        raise IntegrityError(
            f"{src.repo}@{src.revision} now names commit {remote.revision}, but {asset.manifest} pins commit "
            f"{src.commit} for '{asset.key}'. Check what changed upstream; pin the new commit (`reg pin "
            f"{asset.key}` prints the lines) or set revision to the old commit.",
            key=asset.key,
            url=remote.url,
        )
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    cache = reg.cache_roots["hf_hub_cache"]
    try:
        got = Path(hf_hub_download(src.repo, src.file, revision=src.revision, cache_dir=cache, endpoint=endpoint))
    except Exception as exc:  # transport errors differ by client version
        raise DownloadError(
            f"Downloading {src.repo}/{src.file}@{src.revision} into the Hugging Face cache {cache} for "
            f"'{asset.key}' failed: {type(exc).__name__}: {exc}. Nothing was placed; check the network "
            f"(or HF_ENDPOINT) and run `reg fetch {asset.key}` again.",
            key=asset.key,
            url=remote.url,
        ) from None
    staged = reg.store.stage_file(got)
    label = f"{remote.url} @ {remote.revision}" if remote.revision else remote.url
    try:
        if remote.sha256 and staged.sha256 != remote.sha256:
            raise IntegrityError(
                f"The Hugging Face cache file {got} for '{asset.key}' has sha256 {staged.sha256}, but "
                f"{remote.sha256} was published/pinned for it. It was removed from the cache and nothing "
                "was placed; run `reg fetch` again, and if it persists the remote file or the manifest is wrong.",
                key=asset.key,
                url=remote.url,
            )
        return store_and_place(reg, [(Candidate(asset, label), staged)], got, None, False, link, progress, registered)
    except RegError:
        _evict(got)
        raise
    finally:
        staged.discard()


def _evict(snapshot_file: Path) -> None:
    """Remove a refused file from the Hub cache: its snapshot link and the blob it points to."""
    blob = snapshot_file.resolve()
    snapshot_file.unlink(missing_ok=True)
    if blob != snapshot_file:
        blob.unlink(missing_ok=True)


def _unchanged(rec) -> bool:
    from .store import Fingerprint

    try:
        return Fingerprint.of(Path(rec.placed_path)).matches(rec.fingerprint)
    except OSError:
        return False


def _resolve(reg, asset: Asset) -> Remote:
    """Ask the source for the download URL, the published sha256 and the size (one HEAD)."""
    src = asset.source
    if src.type == "url":
        return _head_url(asset, _mirrored(reg, src.url))
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
            f"`reg fetch {asset.key}` again. `reg status` lists this as an owner action.",
            key=asset.key,
            url=page,
        ) from None
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as exc:
        raise RegError(
            f"Hugging Face has no {src.file} at {src.repo}@{src.revision} for '{asset.key}' "
            f"({type(exc).__name__}). Fix the source of '{asset.key}' in {asset.manifest}, or log in "
            "if the repository is private.",
            key=asset.key,
            url=url,
        ) from None
    except Exception as exc:  # 5xx, DNS, TLS, refused: the transport's errors differ by client version (httpx, httpx2)
        raise DownloadError(
            f"Cannot reach {endpoint} for '{asset.key}': {exc}. Check the network (or HF_ENDPOINT), "
            "or use --offline to see what is missing without trying.",
            key=asset.key,
            url=url,
        ) from None
    etag = (meta.etag or "").strip('"')
    published = etag if SHA256_RE.match(etag) else None  # the Hub's etag of an LFS file is its sha256
    if published and asset.sha256 and published != asset.sha256:
        raise IntegrityError(
            f"The Hub publishes sha256 {published} for {src.repo}/{src.file} but {asset.manifest} "
            f"pins {asset.sha256} for '{asset.key}'. The remote file changed: pin a commit "
            "revision in the manifest, or update the pinned sha256 if the new file is intended.",
            key=asset.key,
            url=url,
        )
    sha256 = asset.sha256 or published
    return Remote(
        meta.location or url,
        sha256,
        meta.size,
        etag or "none",
        build_hf_headers(),
        meta.commit_hash or "",
        # A known sha256 checks any resume at the end; If-Range would only hurt there (the CDN's
        # own ETag is not the Hub's, so every resume would start over). A small non-LFS file has
        # no sha256: its git etag is the validator.
        validator=None if sha256 or not etag else f'"{etag}"',
        resumable=bool(sha256 or etag),
    )


def _head_url(asset: Asset, url: str) -> Remote:
    """One HEAD for a URL source: the size the body must have, the validator a resume must be
    confirmed with (a strong ETag, else Last-Modified), and the Content-Type that gives a login
    page away before its bytes are downloaded."""
    from huggingface_hub.utils import http_backoff

    headers = {"Accept-Encoding": "identity"}  # so Content-Length counts the bytes we will receive
    try:
        answer = http_backoff("HEAD", url, headers=headers, max_retries=1)
    except Exception as exc:  # refused, DNS, TLS, 5xx after a retry
        raise DownloadError(
            f"Cannot reach {url} for '{asset.key}': {exc}. Check the network and the URL in "
            f"{asset.manifest} (or the mirror set with `reg config mirrors.{urlsplit(url).netloc}`), "
            "or use --offline to see what is missing without trying.",
            key=asset.key,
            url=url,
        ) from None
    h = answer.headers if answer.status_code not in (405, 501) else {}  # no HEAD there: the body is still checked
    if answer.status_code >= 400 and h:
        raise DownloadError(
            f"{url} answered HTTP {answer.status_code} for '{asset.key}' ({asset.name}). Open it in a "
            f"browser: if the file moved, fix the url of '{asset.key}' in {asset.manifest}; if it needs "
            f"a login, download it there and run `reg add FILE --as {asset.key}`.",
            key=asset.key,
            url=url,
        )
    etag = h.get("ETag") or ""
    strong = etag.startswith('"')  # W/"..." is weak: RFC 9110 forbids it in If-Range
    length = h.get("Content-Length")
    return Remote(
        url,
        asset.sha256,
        int(length) if length and length.isdigit() else asset.size,
        asset.sha256 or (etag if strong else "none"),
        headers,
        validator=etag if strong else h.get("Last-Modified"),
        resumable=bool(asset.sha256) or strong,
        content_type=h.get("Content-Type", ""),
    )


def _mirrored(reg, url: str) -> str:
    """`reg config mirrors.<host> BASE` serves a host's files from an internal mirror."""
    parts = urlsplit(url)
    base = reg.settings.get(f"mirrors.{parts.netloc}")
    return base.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "") if base else url


def _partials(reg, key: str) -> list[Path]:
    """The partial downloads of one key. The key is quoted (a `/` in it names no folder) and the tag
    after it is alphanumeric, so key `a` never claims `a-b`'s files."""
    prefix = f"fetch-{quote(key, safe='')}-"
    return [p for p in reg.store.tmp.glob(f"{prefix}*.part") if p.name[len(prefix) : -5].isalnum()]


def _download(reg, asset: Asset, remote: Remote) -> Staged:
    """Download into the key's partial file and check it: length, web page, sha256. Bytes that fail a
    check are deleted; bytes of a download that stopped are kept only where a resume can be trusted."""
    if _is_web_page(asset, remote.content_type, b""):
        raise _web_page_error(asset, remote, f"Content-Type {remote.content_type}")
    reg.store.tmp.mkdir(parents=True, exist_ok=True)
    tag = re.sub(r"[^0-9A-Za-z]", "", remote.tag)[:64] or "none"
    part = reg.store.tmp / f"fetch-{quote(asset.key, safe='')}-{tag}.part"
    for p in _partials(reg, asset.key):
        too_long = remote.size is not None and p.stat().st_size > remote.size  # not a prefix of the file
        if p != part or not remote.resumable or too_long:
            p.unlink()  # an older remote version's bytes, or bytes nothing vouches for
    try:
        try:
            writer = _get(part, asset, remote)
        except Exception as exc:
            if getattr(getattr(exc, "response", None), "status_code", None) != 416:
                raise
            part.unlink()  # 416: the server says our partial is longer than its file; start over
            writer = _get(part, asset, remote)
    except Exception as exc:
        raise _stopped(asset, remote, part, exc) from None
    sha = writer.hexdigest()
    if writer.rewound:  # the server sent the whole file again (it changed, or ignored Range)
        from .store import hash_file

        sha = hash_file(part)[0]
    size = part.stat().st_size
    if remote.size is not None and size != remote.size:  # older clients do not check this themselves
        raise _stopped(asset, remote, part, None)
    if sha != remote.sha256:
        with open(part, "rb") as f:
            head = f.read(512)
        if _is_web_page(asset, "", head):
            part.unlink()
            raise _web_page_error(
                asset, remote, "a page starting with " + repr(head.lstrip()[:15].decode(errors="replace"))
            )
    if remote.sha256 and sha != remote.sha256:
        part.unlink()
        raise IntegrityError(
            f"The download of '{asset.key}' from {remote.url} has sha256 {sha}, but {remote.sha256} "
            "was published/pinned for it. Nothing was stored or placed; the partial file is "
            "deleted. Retry later; if it persists, the remote file or the manifest is wrong.",
            key=asset.key,
            url=remote.url,
        )
    return Staged(part, sha, size, "download")


def _get(part: Path, asset: Asset, remote: Remote) -> HashingFile:
    """One http_get into `part`, after the bytes already there (hashed once, first)."""
    from huggingface_hub.file_download import http_get

    headers = dict(remote.headers)
    if remote.validator:
        headers["If-Range"] = remote.validator  # a changed file comes whole (200); http_get then starts over
    # With nothing to confirm a resume, the client must not retry with Range inside this run either.
    retries: dict = {} if remote.validator or remote.sha256 else {"_nb_retries": 0}
    digest = hashlib.sha256()
    with open(part, "r+b" if part.exists() else "w+b") as f:
        hash_stream(f, digest=digest)  # an interrupted download's bytes, hashed once; leaves f at the end
        writer = HashingFile(f, digest)
        try:
            http_get(
                remote.url,
                cast(BinaryIO, writer),
                resume_size=f.tell(),
                headers=headers,
                expected_size=remote.size,
                displayed_filename=Path(asset.path).name,
                **retries,
            )
        except BaseException:
            writer.hexdigest()  # stop the hasher thread
            if writer.rewound and not remote.sha256:
                f.truncate(0)  # a newer version's bytes, under the name of the one we started with
            raise
        f.flush()
        os.fsync(f.fileno())
    return writer


def _stopped(asset: Asset, remote: Remote, part: Path, exc: Exception | None) -> DownloadError:
    """The error for a download that ended early; keeps the partial file only where a resume is safe."""
    got = part.stat().st_size if part.exists() else 0
    of = f" of {remote.size}" if remote.size is not None else ""
    if exc is None or type(exc) is OSError:  # http_get's own length check: its advice is not reg's
        why = " (the connection closed before the whole file arrived)"
    else:
        why = f" ({type(exc).__name__}: {exc})"
    if remote.resumable and got:
        then = f"Run `reg fetch {asset.key}` again to resume from there."
    else:
        part.unlink(missing_ok=True)
        then = (
            "The server gives no strong ETag, so a resume could splice two versions of the file: the "
            f"partial file is deleted. Run `reg fetch {asset.key}` again to download it from the start."
        )
    return DownloadError(
        f"The download of '{asset.key}' from {remote.url} ended after {got}{of} bytes{why}. "
        f"Nothing was stored or placed. {then}",
        key=asset.key,
        url=remote.url,
        path=part if part.exists() else None,
    )


def _is_web_page(asset: Asset, content_type: str, head: bytes) -> bool:
    """An HTML Content-Type or file start, for an asset that is not itself a web page."""
    if asset.path.lower().endswith((".html", ".htm")):
        return False
    head = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return content_type.lower().startswith("text/html") or head.startswith((b"<!doctype html", b"<html"))


def _web_page_error(asset: Asset, remote: Remote, what: str) -> WebPageError:
    return WebPageError(
        f"{remote.url} returned a web page ({what}) instead of {asset.name} for '{asset.key}': most likely "
        "a login, consent or error page. Nothing was stored or placed. Open the URL in a browser: if it "
        f"asks you to log in or accept terms, download the file there and run `reg add FILE --as {asset.key}`; "
        f"if it is an error page, fix the url of '{asset.key}' in {asset.manifest} (or the mirror set with "
        "`reg config mirrors.<host>`).",
        key=asset.key,
        url=remote.url,
    )
