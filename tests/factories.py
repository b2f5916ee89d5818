"""Files the tests make: FLAME-structured pickles (as downloaded and as fixed), hostile pickles,
archives, PyTorch-style checkpoints. No real FLAME data; the structure is what matters."""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import scipy.sparse as sp

FLAME_SHAPES = {
    "v_template": (5023, 3),
    "f": (9976, 3),
    "shapedirs": (5023, 3, 400),
    "posedirs": (5023, 3, 36),
    "J_regressor": (5, 5023),
    "weights": (5023, 5),
    "kintree_table": (2, 5),
}


class ChPlaceholder:
    """Pickled as chumpy.ch.Ch (module path rewritten below), with the __dict__ state chumpy 0.70's
    Ch.__getstate__ really gives (checked against chumpy): the value in `x`, a set, flags."""

    def __init__(self, x):
        self.__dict__.update(
            {
                "_dirty_vars": {"x"},
                "_itr": None,
                "_make_dense": False,
                "_make_sparse": False,
                "_depends_on_deps": {},
                "x": x,
            }
        )


class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 `str` (BINSTRING), as the FLAME files from 2017-2023 do."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def flame_model(seed: int = 0, **shape_overrides) -> dict:
    shapes = {**FLAME_SHAPES, **shape_overrides}
    rng = np.random.default_rng(seed)
    model = {
        k: np.zeros(s, dtype=np.float64) for k, s in shapes.items() if k not in ("f", "kintree_table", "J_regressor")
    }
    model["v_template"] = rng.standard_normal(shapes["v_template"])
    model["f"] = np.zeros(shapes["f"], dtype=np.uint32)
    kt = np.zeros(shapes["kintree_table"], dtype=np.uint32)
    kt[0, 0] = 4294967295  # the "weird 2^32-1" root parent CAP4D's io.py fixes
    model["kintree_table"] = kt
    model["J_regressor"] = sp.csc_matrix(np.eye(*shapes["J_regressor"]))
    model["J"] = np.zeros((5, 3))
    model["bs_style"], model["bs_type"] = "lbs", "lrotmin"
    return model


def _rewrite_globals(data: bytes, chumpy: bool) -> bytes:
    """Old module paths (protocol 2 GLOBAL opcodes are plain text, so a byte replace is exact)."""
    data = data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    data = data.replace(b"scipy.sparse._csc\n", b"scipy.sparse.csc\n")
    if chumpy:
        data = data.replace(f"{__name__}\nChPlaceholder\n".encode(), b"chumpy.ch\nCh\n")
    return data


def write_flame_downloaded(path: Path, seed: int = 0, **shapes) -> Path:
    """As downloaded from MPI: shapedirs a chumpy Ch, Python 2 strings, old numpy/scipy module paths."""
    model = flame_model(seed, **shapes)
    model["shapedirs"] = ChPlaceholder(model["shapedirs"])
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_rewrite_globals(buf.getvalue(), chumpy=True))
    return path


def write_flame_fixed(path: Path, seed: int = 0, **shapes) -> Path:
    """What CAP4D's scripts/fixes/fix_flame_pickle.py writes: numpy and scipy only, a modern pickle."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(flame_model(seed, **shapes), f)
    return path


class Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def write_malicious_pickle(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"v_template": Exploit(marker)}, protocol=2))
    return path


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(zipfile.ZipInfo(name), data)
    return path


class _StoragePlaceholder:
    pass


def _rebuild_placeholder(*args):
    pass


def write_torch_checkpoint(path: Path, drop_storage: bool = False, evil_global: bool = False) -> Path:
    """A torch.save-style zip: archive/data.pkl (tensors as persistent storage ids) + archive/data/N."""
    tensors = OrderedDict()
    storages = {}
    for i, shape in enumerate([(4, 4), (4,)]):
        storages[str(i)] = np.arange(int(np.prod(shape)), dtype=np.float32).tobytes()
        tensors[f"layer.{i}"] = _Tensor(str(i), shape)

    class P(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _StorageRef):
                return ("storage", _StoragePlaceholder, obj.key, "cpu", obj.numel)
            return None

    buf = io.BytesIO()
    state = {"state_dict": tensors, "global_step": 100000}
    if evil_global:
        import os

        state["hook"] = os.getcwd
    P(buf, protocol=2).dump(state)
    data = buf.getvalue()
    data = data.replace(f"{__name__}\n_StoragePlaceholder\n".encode(), b"torch\nFloatStorage\n")
    data = data.replace(f"{__name__}\n_rebuild_placeholder\n".encode(), b"torch._utils\n_rebuild_tensor_v2\n")
    members = {"archive/data.pkl": data, "archive/version": b"3\n"}
    for key, raw in storages.items():
        if not (drop_storage and key == "1"):
            members[f"archive/data/{key}"] = raw
    return write_zip(path, members)


class _StorageRef:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class _Tensor:
    def __init__(self, key, shape):
        self.key, self.shape = key, shape

    def __reduce__(self):
        numel = int(np.prod(self.shape))
        stride = tuple(int(np.prod(self.shape[i + 1 :])) for i in range(len(self.shape)))
        return (_rebuild_placeholder, (_StorageRef(self.key, numel), 0, self.shape, stride, False, OrderedDict()))


def write_bfm_mat(path: Path, **shape_overrides) -> Path:
    """A MATLAB file with the BFM 2009 variables convert_BFM.py reads (zeros, compressed: tiny on disk)."""
    from scipy.io import savemat

    shapes = {
        "shapeMU": (160470, 1),
        "shapePC": (160470, 199),
        "shapeEV": (199, 1),
        "texMU": (160470, 1),
        "texPC": (160470, 199),
        "texEV": (199, 1),
        "tl": (106466, 3),
        **shape_overrides,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {k: np.zeros(s, dtype=np.uint8) for k, s in shapes.items()}, do_compression=True)
    return path


def write_tgz(path: Path, members: dict[str, Path]) -> Path:
    import tarfile

    with tarfile.open(path, "w:gz") as t:
        for name, src in members.items():
            t.add(src, arcname=name)
    return path


def write_tiny_pipeline(
    root: Path, checkout: Path, episode: str, versions: dict[str, str], packages: str = "{}", binaries: str = "[]"
) -> None:
    """A one-step pipeline (writes {out}/result.txt with this interpreter) and an episode whose
    versions (name -> state) use it, as a manifest in the registry root."""
    import sys

    lines = "\n".join(f'versions.{v} = {{ pipeline = "tiny", state = "{state}" }}' for v, state in versions.items())
    (root / "manifests").mkdir(parents=True, exist_ok=True)
    (root / "manifests" / "tiny.toml").write_text(f"""
[pipelines.tiny]
name = "Tiny"
root = "{checkout}"
venv = "{sys.prefix}"
packages = {packages}
binaries = {binaries}
[[pipelines.tiny.steps]]
name = "write"
argv = ["{{python}}", "-c", "import sys; open(sys.argv[1], 'w').write('ok')", "{{out}}/result.txt"]
outputs = ["{{out}}/result.txt"]
[episodes.{episode}]
{lines}
""")


# --- Hostile files (tests/test_hostile_files.py): each must be refused quickly and in bounded memory. ---


def write_nested_tuple_key_pickle(path: Path, depth: int = 2_000_000) -> Path:
    """A dict whose key is a tuple nested `depth` deep: hashing it overflowed the C stack (exit 139)."""
    path.write_bytes(b"\x80\x02}" + b")" + b"\x85" * depth + b"K\x01s.")
    return path


def write_trailing_data_pickle(path: Path) -> Path:
    """A valid FLAME pickle with bytes after its STOP opcode (a second payload riding along)."""
    write_flame_fixed(path)
    with open(path, "ab") as f:
        f.write(b"\x80\x02cposix\nsystem\n.")
    return path


def _protocol2_call(module: str, name: str, *args) -> bytes:
    """`module.name(*args)` as protocol-2 opcodes (args: str or int), wrapped in {'v_template': ...}."""
    out = b"\x80\x02}X" + struct.pack("<I", 10) + b"v_template" + f"c{module}\n{name}\n(".encode()
    for a in args:
        if isinstance(a, str):
            raw = a.encode("utf-8")
            out += b"X" + struct.pack("<I", len(raw)) + raw
        else:
            out += (
                b"\x8b" + struct.pack("<i", (a.bit_length() + 8) // 8) + a.to_bytes((a.bit_length() + 8) // 8, "little")
            )
    return out + b"tRs."


def write_codecs_pickle(path: Path, encoding: str = "punycode", n: int = 30_000) -> Path:
    """_codecs.encode of n distinct non-ASCII characters with `encoding` (punycode is quadratic)."""
    text = "".join(chr(0x4E00 + i % 20_000) for i in range(n))
    path.write_bytes(_protocol2_call("_codecs", "encode", text, encoding))
    return path


def write_huge_shape_pickle(path: Path, dims: int = 64, bits: int = 400_000) -> Path:
    """A numpy array whose state gives a shape of huge integers: their product alone took minutes."""
    big = (1 << bits) - 1
    raw = big.to_bytes((bits + 8) // 8, "little")
    out = b"\x80\x02}X" + struct.pack("<I", 10) + b"v_template"
    out += b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R"  # ndarray((0,), 'b')
    out += b"(K\x01(" + (b"\x8b" + struct.pack("<i", len(raw)) + raw) * dims + b"t"  # state: version, shape
    out += b"cnumpy\ndtype\nX\x02\x00\x00\x00f8\x85R\x89C\x00tbs."  # dtype, fortran, raw bytes; BUILD
    path.write_bytes(out)
    return path


def write_inflating_checkpoint(path: Path, inflated: int = 1 << 30) -> Path:
    """A ~1 MB torch.save-style zip whose data.pkl inflates to `inflated` bytes (one huge bytes value)."""
    head = b"\x80\x04}(X\n\x00\x00\x00state_dict}X\x04\x00\x00\x00junk\x8e" + struct.pack("<Q", inflated)
    info = zipfile.ZipInfo("archive/data.pkl")
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w") as z:
        with z.open(info, "w", force_zip64=True) as f:
            f.write(head)
            chunk = bytes(64 << 20)
            for _ in range(inflated // len(chunk)):
                f.write(chunk)
            f.write(bytes(inflated % len(chunk)) + b"u.")
        z.writestr("archive/version", b"3\n")
    return path


def write_tensorless_checkpoint(path: Path, state: dict | None = None) -> Path:
    """A torch.save-style zip whose data.pkl holds plain data and not one tensor."""
    data = pickle.dumps(state if state is not None else {"epoch": 3, "global_step": 100000}, protocol=2)
    return write_zip(path, {"archive/data.pkl": data, "archive/version": b"3\n"})


def write_zip_with_renamed_header(path: Path, name: str, data: bytes) -> Path:
    """The central directory says `name`; the member's local header says something else."""
    write_zip(path, {name: data})
    raw = path.read_bytes()
    other = name[:-1] + ("X" if name[-1] != "X" else "Y")
    path.write_bytes(raw.replace(name.encode(), other.encode(), 1))  # the local header comes first
    return path


def write_zip_with_bad_crc(path: Path, name: str, data: bytes) -> Path:
    """A stored member whose bytes no longer match its CRC-32 (one flipped byte in the middle)."""
    write_zip(path, {name: data})
    raw = bytearray(path.read_bytes())
    at = 30 + len(name) + len(data) // 2  # local header, name, then the stored bytes
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))
    return path


def write_corrupt_mat73(path: Path) -> Path:
    """A MATLAB v7.3 header (so scipy hands over to h5py) followed by bytes that are not HDF5."""
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    path.write_bytes(header.ljust(116, b" ") + bytes(8) + b"\x00\x02IM" + b"not hdf5 at all" * 100)
    return path
