"""Structural validators: does this file have the layout the pipeline loads? Never executes it.

Each validator takes a path and the catalog asset and returns a one-line summary, or raises
ValidationError / UnsafeFileError with a message fragment; `check()` adds the file and the fix.
A validator only proves a file is *some* pickle or checkpoint; the asset's `checks` (top-level keys
the pipeline reads, a minimum number of tensors, a minimum size) prove it is the right one, so an
empty or unrelated checkpoint under a catalogued name is refused too.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

from . import archives
from .catalog import Asset
from .errors import UnsafeFileError, ValidationError
from .restricted_pickle import FLAME, TORCH, Array, Ch, Sparse, Storage, restricted_load

# Bytes per element of the storage types torch.save names (UntypedStorage counts bytes).
STORAGE_ITEMSIZE = {
    "Double": 8,
    "Float": 4,
    "Half": 2,
    "BFloat16": 2,
    "Long": 8,
    "Int": 4,
    "Short": 2,
    "Char": 1,
    "Byte": 1,
    "Bool": 1,
    "ComplexFloat": 8,
    "ComplexDouble": 16,
    "Untyped": 1,
}

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
        model = restricted_load(f, asset.allow_globals, limits=FLAME)
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
    _require(asset, top=model)
    flavour = "as downloaded (chumpy)" if chumpy else "numpy-only (fixed)"
    return f"FLAME model, {flavour}: 5023 vertices, 9976 faces, 400 shape+expression bases"


def torch_ckpt(path: Path, asset: Asset) -> str:
    if not zipfile.is_zipfile(path):
        raise ValidationError(
            "it is not a zip-format PyTorch checkpoint (truncated download, or the legacy "
            "pre-1.6 format, which reg does not read)"
        )
    try:
        with zipfile.ZipFile(path) as z:
            return _torch_zip(z, path, asset)
    except (
        *archives.CORRUPT,
        RuntimeError,
        NotImplementedError,
    ) as exc:  # a bad CRC, names that differ, a broken stream
        raise ValidationError(f"its zip is corrupt ({type(exc).__name__}: {exc})") from None


def _torch_zip(z: zipfile.ZipFile, path: Path, asset: Asset) -> str:
    infos = {i.filename: i for i in z.infolist()}
    problem = archives.inflation_problem([(n, i.file_size, i.compress_size) for n, i in infos.items()])
    if problem:
        raise ValidationError(f"it {problem}")
    pkl = [n for n in infos if n.endswith("data.pkl") and n.count("/") == 1]
    if len(pkl) != 1:
        raise ValidationError("the zip has no single '<name>/data.pkl' record, so it is not a torch.save file")
    prefix = pkl[0].rsplit("/", 1)[0]
    if infos[pkl[0]].file_size > TORCH.max_bytes:
        raise ValidationError(
            f"its data.pkl inflates to {infos[pkl[0]].file_size:,} bytes; a real one holds only the "
            f"structure (tensor bytes live in data/N) and stays under {TORCH.max_bytes >> 20} MiB"
        )
    storages: list[Storage] = []

    def persistent(pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise UnsafeFileError(f"unexpected persistent id of type {type(pid).__name__}")
        kind = str(getattr(pid[1], "qualname", ""))
        storages.append(Storage(str(pid[2])[:100], pid[4], kind))
        return storages[-1]

    with z.open(pkl[0]) as f:
        top = restricted_load(f, asset.allow_globals, persistent, limits=TORCH)
    missing = [s.key for s in storages if f"{prefix}/data/{s.key}" not in infos]
    if missing:
        raise ValidationError(
            f"tensor storage(s) {', '.join(missing[:5])} are missing from the zip: truncated or corrupt"
        )
    for s in storages:
        itemsize = STORAGE_ITEMSIZE.get(s.kind.removeprefix("torch.").removesuffix("Storage"))
        have = infos[f"{prefix}/data/{s.key}"].file_size
        if itemsize and isinstance(s.numel, int) and have < s.numel * itemsize:
            raise ValidationError(
                f"tensor storage {s.key} should hold {s.numel} x {itemsize} bytes but the zip has {have}: truncated or corrupt"
            )
    count = len({s.key for s in storages})
    _require(asset, top=top, tensors=count)
    return f"PyTorch checkpoint, {count} tensor storages"


def _require(asset: Asset, top: object = None, tensors: int | None = None) -> None:
    """The asset's `checks`: top-level keys the pipeline reads, and a minimum number of tensors."""
    keys = asset.checks.get("top_keys") or []
    if keys:
        if not isinstance(top, dict):
            raise ValidationError(
                f"its top level is a {type(top).__name__}, not the dict with {', '.join(keys)} that the pipeline reads"
            )
        missing = [k for k in keys if k not in top]
        if missing:
            found = ", ".join(sorted(map(str, top))[:8]) or "none"
            raise ValidationError(
                f"it has no top-level key {', '.join(map(repr, missing))}, which the pipeline reads (keys found: {found})"
            )
    want = asset.checks.get("min_tensors")
    if want is not None and tensors is not None and tensors < want:
        raise ValidationError(f"it holds {tensors} tensor(s); a real {asset.name} holds at least {want}")


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
    _require(asset, tensors=len(ends))
    return f"safetensors, {len(ends)} tensors"


def bfm_mat(path: Path, asset: Asset) -> str:
    import scipy.io

    try:
        found = {name: tuple(shape) for name, shape, _cls in scipy.io.whosmat(str(path))}
    except NotImplementedError:  # MATLAB v7.3 is HDF5
        found = _hdf5_shapes(path)
    except Exception as exc:
        raise ValidationError(f"it is not a readable MATLAB file ({exc})") from None
    for key, want in BFM_SHAPES.items():
        if key not in found:
            raise ValidationError(f"the BFM variable '{key}' is missing (found: {', '.join(sorted(found))})")
        if found[key] != want:
            raise ValidationError(f"BFM '{key}' has shape {found[key]}, convert_BFM.py needs {want}")
    return "Basel Face Model 2009: 53,490 vertices, 199 components"


def _hdf5_shapes(path: Path) -> dict[str, tuple]:
    """Variable shapes of a MATLAB v7.3 (HDF5) file; a corrupt one is a ValidationError, not a traceback."""
    try:
        import h5py
    except ImportError:
        raise ValidationError(
            "it is a MATLAB v7.3 (HDF5) file; install h5py (`pip install h5py`) so reg can read it"
        ) from None
    try:
        with h5py.File(path, "r") as h:
            return {k: tuple(reversed(h[k].shape)) for k in h if hasattr(h[k], "shape")}
    except Exception as exc:  # h5py raises OSError, KeyError, ValueError on damaged files
        raise ValidationError(f"it says MATLAB v7.3 but is not a readable HDF5 file ({exc})") from None


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
        least = asset.checks.get("min_bytes")
        size = path.stat().st_size
        if least is not None and size < least:
            raise ValidationError(
                f"it is {size:,} bytes, and a real one is at least {least:,} (truncated, or a stand-in)"
            )
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
