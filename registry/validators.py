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
from .errors import RegError, UnsafeFileError, ValidationError
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
        with open(path, "rb") as f:
            legacy = f.read(len(LEGACY_MAGIC)) == LEGACY_MAGIC
        if legacy:  # torch.save before 1.6: torchvision's and torch.hub's older files
            return _torch_legacy(path, asset)
        raise ValidationError(
            "it is not a zip-format PyTorch checkpoint, nor a legacy (pre-1.6) torch.save file: "
            "a truncated download, or another format"
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


# torch/serialization.py: the legacy format starts with pickle.dump(MAGIC_NUMBER), protocol 2: PROTO 2,
# LONG1 of 10 bytes (0x1950a86a20f9469cfc6c, little-endian), then STOP.
LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little") + b"."


def _pickle_bytes(f, limits) -> bytes:
    """The next pickle in `f`, as bytes, found by reading opcodes only (nothing is built)."""
    import pickletools

    start, ops = f.tell(), 0
    try:
        for op, _arg, _pos in pickletools.genops(f):
            ops += 1
            if ops > limits.max_ops or f.tell() - start > limits.max_bytes:
                raise ValidationError(f"its {limits.what} is larger than any real one")
            if op.name == "STOP":
                break
    except ValueError as exc:  # a truncated or garbled opcode stream
        raise ValidationError(f"it is not a readable legacy torch.save file ({exc})") from None
    end = f.tell()
    f.seek(start)
    return f.read(end - start)


def _torch_legacy(path: Path, asset: Asset) -> str:
    """magic, protocol version, system info, the object (storages as persistent ids), the sorted
    storage keys, then each storage: an 8-byte element count and its bytes (torch _legacy_save)."""
    import io

    storages: dict[str, Storage] = {}

    def persistent(pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise UnsafeFileError(f"unexpected persistent id of type {type(pid).__name__}")
        kind = str(getattr(pid[1], "qualname", ""))
        storages.setdefault(str(pid[2])[:100], Storage(str(pid[2])[:100], pid[4], kind))
        return storages[str(pid[2])[:100]]

    size = path.stat().st_size
    with open(path, "rb") as f:
        for _ in range(3):  # magic, protocol version, sys_info
            restricted_load(io.BytesIO(_pickle_bytes(f, TORCH)), (), limits=TORCH)
        top = restricted_load(io.BytesIO(_pickle_bytes(f, TORCH)), asset.allow_globals, persistent, limits=TORCH)
        keys = restricted_load(io.BytesIO(_pickle_bytes(f, TORCH)), (), limits=TORCH)
        if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(storages):
            raise ValidationError("its list of storage keys does not match the storages the object uses")
        for key in keys:
            head = f.read(8)
            if len(head) < 8:
                raise ValidationError(f"it ends before tensor storage {key}: truncated")
            (numel,) = struct.unpack("<q", head)
            itemsize = STORAGE_ITEMSIZE.get(storages[str(key)].kind.removeprefix("torch.").removesuffix("Storage"), 1)
            if numel < 0 or f.tell() + numel * itemsize > size:
                raise ValidationError(f"tensor storage {key} runs past the end of the file: truncated")
            f.seek(numel * itemsize, 1)
        if f.tell() != size:
            raise ValidationError(f"it has {size - f.tell():,} bytes after its last tensor storage")
    _require(asset, top=top, tensors=len(storages))
    return f"PyTorch checkpoint (legacy format), {len(storages)} tensor storages"


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


def npy(path: Path, asset: Asset) -> str:
    """The .npy header (format 1.0-3.0): magic, version, header length, a dict literal with descr,
    fortran_order and shape. Read with ast.literal_eval; the array itself is never loaded."""
    import ast

    with open(path, "rb") as f:
        head = f.read(10)
        if head[:6] != b"\x93NUMPY" or len(head) < 10:
            raise ValidationError("it is not a NumPy .npy file (no \\x93NUMPY magic)")
        major = head[6]
        if major == 1:
            (n,) = struct.unpack("<H", head[8:10])
        elif major in (2, 3):
            (n,) = struct.unpack("<I", head[8:10] + f.read(2))
        else:
            raise ValidationError(f"it has .npy format version {major}, which numpy does not write")
        raw = f.read(min(n, 1 << 20))
    try:
        header = ast.literal_eval(raw.decode("latin1" if major < 3 else "utf8"))
        descr, shape = header["descr"], tuple(header["shape"])
        if not isinstance(header["fortran_order"], bool):
            raise TypeError
    except (ValueError, SyntaxError, KeyError, TypeError, UnicodeDecodeError, MemoryError, RecursionError):
        raise ValidationError(
            "its .npy header is not the dict of descr, fortran_order and shape numpy writes"
        ) from None
    dtype = descr if isinstance(descr, str) else "structured"
    want_dtype, want_shape = asset.checks.get("dtype"), asset.checks.get("shape")
    if want_dtype is not None and dtype != want_dtype:
        raise ValidationError(f"its array has dtype {dtype}, the pipeline loads {want_dtype}")
    if want_shape is not None and shape != tuple(want_shape):
        raise ValidationError(f"its array has shape {shape}, the pipeline loads {tuple(want_shape)}")
    what = "a pickled object (np.save of a dict)" if dtype == "|O" and shape == () else f"{dtype} {shape}"
    return f"NumPy array, {what}"


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValidationError("its protobuf encoding is truncated or malformed")
        b = buf[i]
        value |= (b & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if not b & 0x80:
            return value, i


def protobuf_fields(buf: bytes) -> dict[int, list[tuple[int, int]]]:
    """The top-level fields of a protobuf message: number -> [(start, end) of each value]. Checks that
    every field's wire type is valid and every length stays inside the message (a cut file fails)."""
    fields: dict[int, list[tuple[int, int]]] = {}
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        start = i
        if number == 0:
            raise ValidationError("its protobuf encoding has a field number 0: not a protobuf message")
        if wire == 0:
            _, i = _varint(buf, i)
        elif wire == 1:
            i += 8
        elif wire == 2:
            n, start = _varint(buf, i)
            i = start + n
        elif wire == 5:
            i += 4
        else:
            raise ValidationError(f"its protobuf encoding has wire type {wire}: not a protobuf message")
        if i > len(buf):
            raise ValidationError("its protobuf encoding runs past the end of the file: truncated")
        fields.setdefault(number, []).append((start, i))
    return fields


MAX_PROTOBUF = 4 << 30  # protobuf's own limit is 2 GiB; ONNX keeps bigger tensors in external files


def _read_protobuf(path: Path) -> bytes:
    if path.stat().st_size > MAX_PROTOBUF:
        raise ValidationError("it is larger than any protobuf file can be")
    return path.read_bytes()


def onnx(path: Path, asset: Asset) -> str:
    """onnx.proto ModelProto: ir_version (1, varint), graph (7, a GraphProto with nodes, 1), opset_import (8)."""
    buf = _read_protobuf(path)
    fields = protobuf_fields(buf)
    if 1 not in fields or 7 not in fields:
        raise ValidationError("it has no ir_version and graph: not an ONNX model")
    start, end = fields[7][0]
    graph = protobuf_fields(buf[start:end])
    nodes = len(graph.get(1, []))
    if not nodes:
        raise ValidationError("its graph has no nodes")
    return f"ONNX model, {nodes} graph nodes, {len(graph.get(5, []))} initializers"


def tf_pb(path: Path, asset: Asset) -> str:
    """graph.proto GraphDef: repeated NodeDef node = 1 (each with a name = 1 and an op = 2)."""
    buf = _read_protobuf(path)
    fields = protobuf_fields(buf)
    nodes = fields.get(1, [])
    if not nodes:
        raise ValidationError("it has no graph nodes: not a TensorFlow GraphDef (.pb)")
    for start, end in nodes[:50]:
        node = protobuf_fields(buf[start:end])
        if 1 not in node or 2 not in node:
            raise ValidationError("a graph node has no name or op: not a TensorFlow GraphDef (.pb)")
    return f"TensorFlow GraphDef, {len(nodes)} nodes"


def tar(path: Path, asset: Asset) -> str:
    """A tar archive (any compression tarfile reads): every header readable to the end, no member
    escaping its folder, no bomb (registry/archives.py)."""
    import tarfile

    if not tarfile.is_tarfile(path):
        raise ValidationError("it is not a tar archive")
    try:
        names = archives.members(path)
    except RegError as exc:  # "The archive F is damaged (...). reg refuses it whole; ...": keep the middle
        what = str(exc).split(". reg refuses")[0].removeprefix(f"The archive {path} ")
        raise ValidationError(f"it {what}") from None
    if not names:
        raise ValidationError("it is a tar archive that holds no files")
    return f"tar archive, {len(names)} files"


def _torch_hub_hash(path: Path, sha256: str) -> None:
    r"""torch.hub.download_url_to_file: HASH_REGEX = r"-([a-f0-9]*)\." on the file name, and the
    digest must start with that prefix."""
    import re

    m = re.search(r"-([a-f0-9]*)\.", path.name)
    if not m or not m.group(1):
        raise ValidationError(f"its file name {path.name} carries no hash prefix, though the catalog says it does")
    if not sha256.startswith(m.group(1)):
        raise ValidationError(
            f"its sha256 {sha256} does not start with {m.group(1)}, the prefix its file name carries "
            "(torch.hub refuses it too)"
        )


def _sha1(path: Path, want: str) -> None:
    import hashlib

    digest = hashlib.sha1()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != want:
        raise ValidationError(f"its SHA-1 is {digest.hexdigest()}, upstream publishes {want}")


VALIDATORS = {
    "none": lambda path, asset: "no structural check declared",
    "flame-pkl": flame_pkl,
    "torch-ckpt": torch_ckpt,
    "safetensors": safetensors,
    "bfm-mat": bfm_mat,
    "wav": _wav,
    "png": _magic(b"\x89PNG\r\n\x1a\n", 0, "PNG image"),
    "npy": npy,
    "onnx": onnx,
    "tar": tar,
    "tf-pb": tf_pb,
}


def check(path: Path, asset: Asset, shown_as: str, sha256: str | None = None) -> str:
    """Run the asset's validator on `path`; errors name `shown_as` (the file the user gave).
    `sha256` (the staged file's) lets the torch.hub name check skip a second pass."""
    try:
        least = asset.checks.get("min_bytes")
        size = path.stat().st_size
        if least is not None and size < least:
            raise ValidationError(
                f"it is {size:,} bytes, and a real one is at least {least:,} (truncated, or a stand-in)"
            )
        if asset.checks.get("torch_hub_hash"):
            from .store import hash_file

            _torch_hub_hash(Path(asset.path), sha256 or hash_file(path)[0])
        if sha1 := asset.checks.get("sha1"):
            _sha1(path, sha1)
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
