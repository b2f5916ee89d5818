"""Structural validators: does this file have the layout the pipeline loads? Never executes it.

Each validator takes a path and the catalog asset and returns a one-line summary, or raises
ValidationError / UnsafeFileError with a message fragment; `check()` adds the file and the fix.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

from .catalog import Asset
from .errors import UnsafeFileError, ValidationError
from .restricted_pickle import Array, Ch, Sparse, Storage, restricted_load

# Shapes CAP4D's flowface/flame/io.py and flame.py rely on (FLAME 2020 and 2023 alike).
FLAME_SHAPES = {
    "v_template": (5023, 3),
    "f": (9976, 3),
    "shapedirs": (5023, 3, 400),
    "posedirs": (5023, 3, 36),
    "J_regressor": (5, 5023),
    "weights": (5023, 5),
    "kintree_table": (2, 5),
}
# convert_BFM.py reads these; 53,490 vertices x 3 coordinates, 199 principal components.
BFM_SHAPES = {
    "shapeMU": (160470, 1),
    "shapePC": (160470, 199),
    "shapeEV": (199, 1),
    "texMU": (160470, 1),
    "texPC": (160470, 199),
    "texEV": (199, 1),
}


def flame_pkl(path: Path, asset: Asset) -> str:
    with open(path, "rb") as f:
        model = restricted_load(f, asset.allow_globals)
    if not isinstance(model, dict):
        raise ValidationError("it does not hold a FLAME model (expected a dict of arrays at the top)")
    chumpy = False
    for key, want in FLAME_SHAPES.items():
        if key not in model:
            raise ValidationError(
                f"the FLAME key '{key}' is missing (keys found: {', '.join(sorted(map(str, model)))})"
            )
        value = model[key]
        chumpy |= isinstance(value, Ch)
        if not isinstance(value, (Array, Ch, Sparse)):
            raise ValidationError(f"FLAME '{key}' is a {type(value).__name__}, not an array")
        if tuple(value.shape) != want:
            raise ValidationError(f"FLAME '{key}' has shape {tuple(value.shape)}, CAP4D needs {want}")
    flavour = "as downloaded (chumpy)" if chumpy else "numpy-only (fixed)"
    return f"FLAME model, {flavour}: 5023 vertices, 9976 faces, 400 shape+expression bases"


def torch_ckpt(path: Path, asset: Asset) -> str:
    if not zipfile.is_zipfile(path):
        raise ValidationError(
            "it is not a zip-format PyTorch checkpoint (truncated download, or the legacy "
            "pre-1.6 format, which reg does not read)"
        )
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pkl) != 1:
            raise ValidationError("the zip has no single '<name>/data.pkl' record, so it is not a torch.save file")
        prefix = pkl[0].rsplit("/", 1)[0]
        storages: list[Storage] = []

        def persistent(pid):
            if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
                raise UnsafeFileError(f"unexpected persistent id {pid!r}")
            storages.append(Storage(str(pid[2]), pid[4] if len(pid) > 4 else 0))
            return storages[-1]

        with z.open(pkl[0]) as f:
            restricted_load(f, asset.allow_globals, persistent)
        missing = [s.key for s in storages if f"{prefix}/data/{s.key}" not in names]
        if missing:
            raise ValidationError(
                f"tensor storage(s) {', '.join(missing[:5])} are missing from the zip: truncated or corrupt"
            )
    return f"PyTorch checkpoint, {len({s.key for s in storages})} tensor storages"


def safetensors(path: Path, asset: Asset) -> str:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValidationError("it is shorter than a safetensors header")
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, 100 << 20):
            raise ValidationError(f"its header length {n} does not fit the file: not safetensors, or truncated")
        try:
            header = json.loads(f.read(n))
        except ValueError:
            raise ValidationError("its header is not valid JSON") from None
    data = size - 8 - n
    ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
    if any(t["data_offsets"][0] > t["data_offsets"][1] for k, t in header.items() if k != "__metadata__") or (
        ends and max(ends) != data
    ):
        raise ValidationError(f"tensor offsets do not match the {data} data bytes: truncated or corrupt")
    return f"safetensors, {len(ends)} tensors"


def bfm_mat(path: Path, asset: Asset) -> str:
    try:
        import scipy.io

        found = {name: tuple(shape) for name, shape, _cls in scipy.io.whosmat(str(path))}
    except NotImplementedError:  # MATLAB v7.3 is HDF5
        try:
            import h5py
        except ImportError:
            raise ValidationError(
                "it is a MATLAB v7.3 (HDF5) file; install h5py (`pip install h5py`) so reg can read it"
            ) from None
        with h5py.File(path, "r") as h:
            found = {k: tuple(reversed(h[k].shape)) for k in h if hasattr(h[k], "shape")}
    except Exception as exc:
        raise ValidationError(f"it is not a readable MATLAB file ({exc})") from None
    for key, want in BFM_SHAPES.items():
        if key not in found:
            raise ValidationError(f"the BFM variable '{key}' is missing (found: {', '.join(sorted(found))})")
        if found[key] != want:
            raise ValidationError(f"BFM '{key}' has shape {found[key]}, convert_BFM.py needs {want}")
    return "Basel Face Model 2009: 53,490 vertices, 199 components"


def _magic(expected: bytes, offset: int, what: str):
    def check(path: Path, asset: Asset) -> str:
        with open(path, "rb") as f:
            head = f.read(offset + len(expected))
        if head[offset:] != expected:
            raise ValidationError(f"it is not a {what} file")
        return what

    return check


def _wav(path: Path, asset: Asset) -> str:
    with open(path, "rb") as f:
        head = f.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise ValidationError("it is not a WAV file (convert it first: `ffmpeg -i INPUT -ar 16000 audio.wav`)")
    return "WAV audio"


VALIDATORS = {
    "none": lambda path, asset: "no structural check declared",
    "flame-pkl": flame_pkl,
    "torch-ckpt": torch_ckpt,
    "safetensors": safetensors,
    "bfm-mat": bfm_mat,
    "wav": _wav,
    "png": _magic(b"\x89PNG\r\n\x1a\n", 0, "PNG image"),
}


def check(path: Path, asset: Asset, shown_as: str) -> str:
    """Run the asset's validator on `path`; errors name `shown_as` (the file the user gave)."""
    try:
        return VALIDATORS[asset.validator](path, asset)
    except UnsafeFileError as exc:
        raise UnsafeFileError(
            f"Refused {shown_as}: {exc}, which could run code when loaded. Nothing was stored or placed. "
            f"Get a clean copy of {asset.name} from its source; if you trust this global, list it under "
            f"allow_globals for '{asset.key}' in a manifest in the registry's manifests/ folder."
        ) from None
    except ValidationError as exc:
        raise ValidationError(
            f"{shown_as} is not a valid {asset.name} ('{asset.key}'): {exc}. Nothing was stored or placed. "
            "Download it again from its source, or pass --as KEY if it is a different asset."
        ) from None
