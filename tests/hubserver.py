"""A small local stand-in for the Hugging Face Hub's file endpoints, for tests, benchmarks and demos.

It answers what `huggingface_hub` asks when it downloads one file:
  HEAD /{repo}/resolve/{revision}/{path}  -> X-Repo-Commit, X-Linked-Etag (the sha256 of an LFS
                                             file), X-Linked-Size; 403 + X-Error-Code: GatedRepo
  GET  same URL [Range: bytes=N-]         -> the bytes (206 for a range; 416 past the end; 200 and the
                                             whole file when If-Range names another version)
and serves plain files under /files/{path} (for URL sources behind `reg config mirrors.<host>`),
with ETag, Last-Modified and Content-Type as a plain web server sends them.
Knobs per file: a wrong published sha256, responses cut in the middle, a file that changes after
a cut, a weak or no ETag, a Content-Type, bodies or HEADs without a length.

Demo: `python tests/hubserver.py --demo` serves small stand-ins for the shipped catalog's
Hugging Face files and prints the HF_ENDPOINT to use (README, "Fetching open weights").
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class HubFile:
    data: bytes
    published_sha256: str | None = None  # default: the real sha256 (an LFS file)
    cut_first: int = 0  # cut this many GET responses halfway through the body
    fail_after_cut: bool = False  # after a cut, answer 503 until `heal()`
    changed_after_cut: bytes | None = None  # after a cut, the file has this new content
    etag: str | None = "strong"  # ETag "<sha256>"; "weak": W/"<sha256>"; None: no ETag at all
    content_type: str = "application/octet-stream"
    no_length: bool = False  # GET bodies carry no Content-Length: they end when the connection closes
    head_length: bool = True  # HEAD says the size

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def validators(self) -> dict:
        """ETag and Last-Modified of the current content (both change when the content does)."""
        tag = f'"{self.published_sha256 or self.sha256}"'
        out = {"Last-Modified": formatdate(1_700_000_000 + int(self.sha256[:6], 16), usegmt=True)}
        if self.etag:
            out["ETag"] = tag if self.etag == "strong" else f"W/{tag}"
        return out


@dataclass
class Hub:
    files: dict[str, HubFile] = field(default_factory=dict)  # "repo/path" -> file
    gated: set[str] = field(default_factory=set)  # repos
    # method, path, Range, Authorization, If-Range
    requests: list[tuple[str, str, str | None, str | None, str | None]] = field(default_factory=list)
    broken: bool = False

    def add(self, repo: str, path: str, data: bytes, **knobs) -> HubFile:
        self.files[f"{repo}/{path}"] = f = HubFile(data, **knobs)
        return f

    def heal(self) -> None:
        self.broken = False


def _handler(hub: Hub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _lookup(self):
            path = self.path.split("?")[0]
            if path.startswith("/files/"):  # a query names a file too (Google Drive's ?id=...)
                whole = self.path[len("/files/") :]
                return None, hub.files.get(whole) or hub.files.get(path[len("/files/") :])
            parts = path.strip("/").split("/")
            if len(parts) < 5 or parts[2] != "resolve":
                return None, None
            repo = "/".join(parts[:2])
            return repo, hub.files.get(f"{repo}/{'/'.join(parts[4:])}")

        def _headers(self, status: int, headers: dict):
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, str(v))
            self.end_headers()

        def _file(self, method: str) -> HubFile | None:
            """Log the request; answer 403 (gated) or 404 here, or return the file to serve."""
            h = self.headers
            hub.requests.append((method, self.path, h.get("Range"), h.get("Authorization"), h.get("If-Range")))
            repo, f = self._lookup()
            if repo in hub.gated:
                self._headers(
                    403,
                    {
                        "X-Error-Code": "GatedRepo",
                        "X-Error-Message": "Access to model is restricted.",
                        "Content-Length": 0,
                    },
                )
                return None
            if f is None:
                self._headers(404, {"X-Error-Code": "EntryNotFound", "Content-Length": 0})
            return f

        def do_HEAD(self):
            if (f := self._file("HEAD")) is None:
                return
            headers = {
                "X-Repo-Commit": COMMIT,
                "X-Linked-Etag": f'"{f.published_sha256 or f.sha256}"',
                "X-Linked-Size": len(f.data),
                **f.validators(),
                "Content-Type": f.content_type,
                "Content-Length": len(f.data),
                "Accept-Ranges": "bytes",
            }
            if not f.head_length:
                headers = {k: v for k, v in headers.items() if "Size" not in k and k != "Content-Length"}
            self._headers(200, headers)

        def do_GET(self):
            rng = self.headers.get("Range")
            if (f := self._file("GET")) is None:
                return
            if hub.broken:
                self._headers(503, {"Content-Length": 0})
                return
            validators = f.validators()
            if_range = self.headers.get("If-Range")
            if rng and if_range and if_range not in (validators.get("ETag"), validators["Last-Modified"]):
                rng = None  # another version than the client's: the whole file (RFC 9110 If-Range)
            start = int(rng.split("=")[1].split("-")[0]) if rng else 0
            if start and start >= len(f.data):
                self._headers(416, {"Content-Range": f"bytes */{len(f.data)}", "Content-Length": 0})
                return
            body = f.data[start:]
            status = 206 if rng else 200
            headers = {"X-Repo-Commit": COMMIT, "Accept-Ranges": "bytes", "Content-Type": f.content_type, **validators}
            headers.update({"Connection": "close"} if f.no_length else {"Content-Length": len(body)})
            if rng:
                headers["Content-Range"] = f"bytes {start}-{len(f.data) - 1}/{len(f.data)}"
            self._headers(status, headers)
            cut = f.cut_first > 0
            if cut:
                f.cut_first -= 1
                hub.broken = f.fail_after_cut
                if f.changed_after_cut is not None:
                    f.data = f.changed_after_cut
                body = body[: len(body) // 2]
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = cut or f.no_length

    return Handler


def serve(hub: Hub) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def demo_hub() -> Hub:
    """Stand-ins for the shipped catalog's open files: small, structurally valid checkpoints."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    import tempfile

    from factories import write_torch_checkpoint

    hub = Hub()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = write_torch_checkpoint(Path(tmp) / "c.ckpt").read_bytes()
    hub.add("ftaubner/cap4d", "cap4d_mmdm_100k.ckpt", ckpt)
    hub.add("ByteDance/LatentSync-1.6", "latentsync_unet.pt", ckpt)
    hub.add("ByteDance/LatentSync-1.6", "whisper/tiny.pt", ckpt)
    hub.add("mirror", "download.pytorch.org/models/vgg16-397923af.pth", ckpt)
    return hub


if __name__ == "__main__":
    import time

    server, url = serve(demo_hub())
    print(
        f"serving a stand-in Hub at {url}\n  export HF_ENDPOINT={url}\n"
        f"  reg config mirrors.download.pytorch.org {url}/files/mirror/download.pytorch.org",
        flush=True,
    )
    while True:
        time.sleep(3600)
