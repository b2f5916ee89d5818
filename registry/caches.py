"""Where the pipelines' libraries look for the files they would otherwise download at run time.

A catalogued path may start with a cache root, `{torch_home}/` or `{hf_hub_cache}/`. Each root
follows its library's own rule, so a file reg places is the file the library finds:
- torch.hub (`torch.hub.get_dir`): `$TORCH_HOME`, else `$XDG_CACHE_HOME/torch`, else
  `~/.cache/torch`; `load_state_dict_from_url` looks in `<that>/hub/checkpoints/<file name>`.
- huggingface_hub (`constants.HF_HUB_CACHE`): `$HF_HUB_CACHE`, else `$HF_HOME/hub`, where
  HF_HOME is `$XDG_CACHE_HOME/huggingface` or `~/.cache/huggingface` by default.
`reg config caches.torch_home DIR` / `reg config caches.hf_home DIR` move a root on one machine;
render steps then get TORCH_HOME / HF_HOME / HF_HUB_CACHE pointing at the same folders.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

COMMIT_RE = re.compile(r"[0-9a-f]{40}")
_SNAPSHOT = re.compile(r"^(?P<repo>.*/models--[^/]+)/snapshots/(?P<rev>[^/]+)/(?P<file>.+)$")


def roots(settings: Mapping[str, str], environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The cache roots on this machine: reg's setting first, then the library's environment rule."""
    xdg = environ.get("XDG_CACHE_HOME") or "~/.cache"
    torch_home = settings.get("caches.torch_home") or environ.get("TORCH_HOME") or os.path.join(xdg, "torch")
    if settings.get("caches.hf_home"):
        hf_home = settings["caches.hf_home"]
        hub = os.path.join(hf_home, "hub")
    else:
        hf_home = environ.get("HF_HOME") or os.path.join(xdg, "huggingface")
        hub = environ.get("HF_HUB_CACHE") or environ.get("HUGGINGFACE_HUB_CACHE") or os.path.join(hf_home, "hub")
    out = {"torch_home": torch_home, "hf_home": hf_home, "hf_hub_cache": hub}
    return {k: os.path.abspath(os.path.expanduser(v)) for k, v in out.items()}


def expand(path: str, cache_roots: Mapping[str, str]) -> str:
    """A catalog path with its cache root filled in. In the Hub cache, a snapshot named by a branch
    or tag is the commit its `refs/` file names, exactly as huggingface_hub resolves it offline
    (before the first fetch there is no ref, and the path simply does not exist yet)."""
    for name in ("torch_home", "hf_hub_cache"):
        prefix = f"{{{name}}}/"
        if path.startswith(prefix):
            path = os.path.join(cache_roots[name], path[len(prefix) :])
            break
    m = _SNAPSHOT.match(path)
    if m and not COMMIT_RE.fullmatch(m["rev"]):
        try:
            with open(os.path.join(m["repo"], "refs", m["rev"])) as f:
                commit = f.read().strip()
        except OSError:
            return path
        if COMMIT_RE.fullmatch(commit):
            path = os.path.join(m["repo"], "snapshots", commit, m["file"])
    return path


def step_environment(cache_roots: Mapping[str, str], offline: bool) -> dict[str, str]:
    """What a render step needs to find the placed files, and, once every declared download is
    verified, to fail at once on an undeclared one instead of downloading it."""
    env = {
        "TORCH_HOME": cache_roots["torch_home"],
        "HF_HOME": cache_roots["hf_home"],
        "HF_HUB_CACHE": cache_roots["hf_hub_cache"],
    }
    if offline:
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return env
