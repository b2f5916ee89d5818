"""The restricted unpickler's allow-list, table-driven: every allowed global resolves to an inert
stand-in, every forbidden one is refused by name; and the scan's bounds, one file each."""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import scipy.sparse as sp

from reg.registry.errors import UnsafeFileError, ValidationError
from reg.registry.restricted_pickle import ALLOWED, FLAME, TORCH, Array, Limits, Sparse, restricted_load


def _global(module: str, name: str, protocol: int = 2) -> bytes:
    """A pickle that only names `module.name` (GLOBAL, or STACK_GLOBAL from protocol 4)."""
    if protocol >= 4:
        m, n = module.encode(), name.encode()
        return b"\x80\x04\x8c" + bytes([len(m)]) + m + b"\x8c" + bytes([len(n)]) + n + b"\x93."
    return b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"."


def load(data: bytes, extra=(), limits: Limits = FLAME):
    return restricted_load(io.BytesIO(data), extra, limits=limits)


TORCH_NAMES = [("torch", n) for n in ("FloatStorage", "HalfStorage", "BFloat16Storage", "UntypedStorage", "Size")]


@pytest.mark.parametrize("module, name", sorted(ALLOWED) + TORCH_NAMES)
def test_each_allowed_global_loads(module, name):
    for protocol in (2, 4):
        assert load(_global(module, name, protocol)) is not None


FORBIDDEN = [
    ("os", "system"),
    ("posix", "system"),
    ("nt", "system"),
    ("builtins", "eval"),
    ("builtins", "exec"),
    ("builtins", "getattr"),
    ("builtins", "__import__"),
    ("builtins", "open"),
    ("__builtin__", "open"),
    ("__builtin__", "eval"),
    ("subprocess", "Popen"),
    ("subprocess", "check_output"),
    ("pickle", "loads"),
    ("_pickle", "loads"),
    ("marshal", "loads"),
    ("types", "FunctionType"),
    ("functools", "partial"),
    ("operator", "attrgetter"),
    ("codecs", "encode"),
    ("_codecs", "decode"),
    ("numpy", "load"),
    ("numpy.core.multiarray", "frombuffer"),
    ("numpy.lib.npyio", "load"),
    ("torch", "load"),
    ("torch", "Tensor"),
    ("torch.serialization", "load"),
    ("torch._utils", "_import_dotted_name"),
    ("torch._utils", "_rebuild_device_tensor_from_numpy"),
    ("torch._utils", "_rebuild_wrapper_subclass"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("chumpy.ch", "Ch.__init__"),
    ("collections", "defaultdict"),
    ("copyreg", "__newobj__"),
]


@pytest.mark.parametrize("module, name", FORBIDDEN)
def test_each_forbidden_global_is_refused_by_name(module, name):
    for protocol in (2, 4):
        with pytest.raises(UnsafeFileError, match=f"the global {module}.{name}$"):
            load(_global(module, name, protocol))


def test_allow_globals_of_an_asset_extends_the_list_by_full_name():
    assert load(_global("mymodel", "Config"), extra=["mymodel.Config"]) is not None
    with pytest.raises(UnsafeFileError, match="mymodel.Other"):
        load(_global("mymodel", "Other"), extra=["mymodel.Config"])


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_real_numpy_scipy_and_collections_pickles_load_as_stand_ins(protocol):
    data = pickle.dumps(
        {
            "a": np.arange(12, dtype=np.float32).reshape(3, 4),
            "o": np.array([1, "x"], dtype=object),
            "s": sp.csc_matrix(np.eye(3)),
            "d": OrderedDict(k={1, 2}),
            "f": frozenset({3}),
            "b": b"\xff\x00",
        },
        protocol=protocol,
    )
    got = load(data)
    assert isinstance(got["a"], Array) and got["a"].shape == (3, 4) and got["o"].shape == (2,)
    assert isinstance(got["s"], Sparse) and got["s"].shape == (3, 3)
    assert got["d"] == OrderedDict(k={1, 2}) and got["f"] == frozenset({3}) and got["b"] == b"\xff\x00"


def test_array_bytes_must_match_its_shape():
    data = pickle.dumps(np.zeros((4, 4)), protocol=2)
    good = load(data)
    assert good.shape == (4, 4)
    short = pickle.dumps(np.zeros((4, 4)), protocol=2).replace(b"K\x04K\x04", b"K\x04K\x05")
    with pytest.raises(ValidationError, match=r"shape \(4, 5\) holds 128 bytes, not 160"):
        load(short)


SMALL = Limits("test pickle", max_bytes=1 << 20, max_string=1000, max_ops=10_000, max_depth=10, max_items=100)


@pytest.mark.parametrize(
    "data, message",
    [
        (pickle.dumps([[[[[[[[[[[[1]]]]]]]]]]]]), "nests containers more than 10 deep"),
        (b"\x80\x02)" + b"\x85" * 11 + b".", "nests containers more than 10 deep"),
        (pickle.dumps(list(range(101))), "holds more than 100 items"),
        (pickle.dumps(b"x" * 1001), "holds a 1,001-byte value"),
        (pickle.dumps("x" * 1001), "holds a 1,001-byte value"),
        (pickle.dumps(1 << 200), "an integer of 201 bits"),
        (b"\x80\x02" + b"N0" * 6000 + b"N.", "more than 10,000 opcodes"),
        (pickle.dumps(1) + b"junk", "4 bytes after the pickle's end"),
        (pickle.dumps(1)[:-1], "not a readable pickle"),
        (b"\x80\x02h\x00.", "not a readable pickle"),  # a memo entry that was never put
        (b"x" * (2 << 20), "larger than 1 MiB"),
    ],
)
def test_scan_bounds(data, message):
    with pytest.raises(ValidationError, match=message):
        load(data, limits=SMALL)


def test_tuples_nested_through_the_memo_are_counted():
    """Tuples are what gets hashed (dict keys, sets) and they are immutable: their depth is exact."""
    ops = b"\x80\x02)q\x00" + b"h\x00\x85q\x00" * 12 + b"."  # t = (); t = (t,) twelve times via the memo
    with pytest.raises(ValidationError, match="more than 10 deep"):
        load(ops, limits=SMALL)


def test_lists_grown_through_the_memo_load_without_harm():
    """A memoised list that grows after being nested is not re-propagated (that would make the scan
    quadratic); such nests are lists only, which nothing hashes and whose repr and deallocation are
    guarded, so even 100,000 levels load without harm."""
    ops = b"\x80\x02]q\x00" + b"h\x00]q\x00a0" * 100_000 + b"."  # L.append(inner); memo[0] = inner
    got = load(ops)
    assert isinstance(got, list) and len(got) == 1
    del got


@pytest.mark.parametrize("encoding", ["punycode", "utf-16", "rot13", "zlib_codec", "hex"])
def test_codecs_encode_is_latin1_only(encoding):
    data = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX" + len(encoding).to_bytes(4, "little")
    data += encoding.encode() + b"\x86R."
    with pytest.raises(ValidationError, match=f"'{encoding}' encoding"):
        load(data)
    assert (
        load(data.replace(b"X" + len(encoding).to_bytes(4, "little") + encoding.encode(), b"X\x06\x00\x00\x00latin1"))
        == b"abc"
    )


def test_limits_of_shipped_kinds_fit_real_files():
    """FLAME shapedirs (5023 x 3 x 400 float64) as a protocol-2 UTF-8 string fits; a torch data.pkl is structure only."""
    assert FLAME.max_string >= 2 * 5023 * 3 * 400 * 8 and FLAME.max_bytes >= 2 * FLAME.max_string
    assert TORCH.max_bytes < FLAME.max_bytes
