"""A small local stand-in for the Hugging Face Hub's file endpoints, for tests, benchmarks and demos.

It answers what `huggingface_hub` asks when it downloads one file:
  HEAD /{repo}/resolve/{revision}/{path}  -> X-Repo-Commit, X-Linked-Etag (the sha256 of an LFS
                                             file), X-Linked-Size; 403 + X-Error-Code: GatedRepo
  GET  same URL [Range: bytes=N-]         -> the bytes (206 for a range)
and serves plain files under /files/{path} (for URL sources behind `reg config mirrors.<host>`).
Knobs per file: a wrong published sha256, and responses cut in the middle.

Demo: `python tests/hubserver.py --demo` serves small stand-ins for the shipped catalog's
Hugging Face files and prints the HF_ENDPOINT to use (README, "Fetching open weights").
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class HubFile:
    data: bytes
    published_sha256: str | None = None  # default: the real sha256 (an LFS file)
    cut_first: int = 0  # cut this many GET responses halfway through the body
    fail_after_cut: bool = False  # after a cut, answer 503 until `heal()`

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Hub:
    files: dict[str, HubFile] = field(default_factory=dict)  # "repo/path" -> file
    gated: set[str] = field(default_factory=set)  # repos
    requests: list[tuple[str, str, str | None, str | None]] = field(default_factory=list)  # method, path, Range, auth
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
            if path.startswith("/files/"):
                return None, hub.files.get(path[len("/files/") :])
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
            hub.requests.append((method, self.path, self.headers.get("Range"), self.headers.get("Authorization")))
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
            self._headers(
                200,
                {
                    "X-Repo-Commit": COMMIT,
                    "X-Linked-Etag": f'"{f.published_sha256 or f.sha256}"',
                    "X-Linked-Size": len(f.data),
                    "ETag": f'"{f.published_sha256 or f.sha256}"',
                    "Content-Length": len(f.data),
                    "Accept-Ranges": "bytes",
                },
            )

        def do_GET(self):
            rng = self.headers.get("Range")
            if (f := self._file("GET")) is None:
                return
            if hub.broken:
                self._headers(503, {"Content-Length": 0})
                return
            start = int(rng.split("=")[1].split("-")[0]) if rng else 0
            body = f.data[start:]
            status = 206 if rng else 200
            headers = {"Content-Length": len(body), "X-Repo-Commit": COMMIT, "Accept-Ranges": "bytes"}
            if rng:
                headers["Content-Range"] = f"bytes {start}-{len(f.data) - 1}/{len(f.data)}"
            self._headers(status, headers)
            if f.cut_first > 0:
                f.cut_first -= 1
                hub.broken = f.fail_after_cut
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

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
