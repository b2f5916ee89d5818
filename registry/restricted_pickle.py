"""Read a pickle as data, never as code.

`pickle.load` executes whatever globals a file names (`os.system` in `__reduce__` is enough).
This unpickler resolves only a short allow-list of globals, and resolves each to an inert
stand-in that records what the file describes (an array's shape and byte length, a sparse
matrix's shape, a chumpy `Ch`'s value) without importing numpy, scipy, chumpy or torch.
Anything else raises UnsafeFileError naming the global: the same policy as
`torch.load(weights_only=True)`, but independent of the libraries being installed.
"""

from __future__ import annotations

import _codecs
import pickle
from collections import OrderedDict
from collections.abc import Callable
from math import prod
from typing import Any, BinaryIO

from .errors import UnsafeFileError, ValidationError


class Opaque:
    """An allowed object whose content does not matter to validation: kept as plain data."""

    qualname = "?"

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state


class DType(Opaque):
    @property
    def itemsize(self) -> int | None:
        code = str(self.args[0]) if self.args else ""
        digits = "".join(c for c in code if c.isdigit())
        if digits:
            return int(digits)
        return {"b": 1, "?": 1, "B": 1}.get(code.lstrip("<>|=")[:1])


class Array(Opaque):
    """numpy.ndarray as pickled: state = (version, shape, dtype, is_fortran, raw bytes | list)."""

    shape: tuple = ()

    def __setstate__(self, state):
        self.state = state
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise ValidationError("an array in the pickle has an unexpected state layout")
        shape, dtype, raw = state[-4], state[-3], state[-1]
        self.shape = tuple(int(n) for n in shape)
        itemsize = dtype.itemsize if isinstance(dtype, DType) else None
        if isinstance(raw, (bytes, str)) and itemsize and len(raw) != prod(self.shape) * itemsize:
            raise ValidationError(
                f"an array of shape {self.shape} holds {len(raw)} bytes, not "
                f"{prod(self.shape) * itemsize}: the file is truncated or corrupt"
            )


class Sparse(Opaque):
    """scipy.sparse matrix: its shape lives in `_shape` (newer scipy) or `shape` (older)."""

    @property
    def shape(self) -> tuple:
        st = getattr(self, "state", None) or {}
        return tuple(st.get("_shape") or st.get("shape") or ())


class Ch(Opaque):
    """chumpy.ch.Ch: its array value is the `x` term of its __dict__ state."""

    @property
    def shape(self) -> tuple:
        x = (getattr(self, "state", None) or {}).get("x")
        return getattr(x, "shape", ())


class Tensor(Opaque):
    def __init__(self, storage=None, offset=0, size=(), *rest):
        self.storage, self.shape = storage, tuple(size)


class Storage(Opaque):
    def __init__(self, key: str, numel: int):
        self.key, self.numel = key, numel


def _reconstruct(cls, *_args):
    return Array() if cls is Array else Opaque()


def _newobj_reconstructor(cls, base, state):  # copy_reg._reconstructor of Python 2 pickles
    if base is not object:
        raise UnsafeFileError(f"copy_reg._reconstructor with base {base!r}")
    return cls.__new__(cls)


def _frombuffer(buf, dtype, shape, order):
    a = Array()
    a.shape = tuple(shape)
    return a


def _rebuild_tensor(storage, offset, size, *rest):
    return Tensor(storage, offset, size)


def _first(x, *_rest):
    return x


_NUMPY = ("numpy.core.multiarray", "numpy._core.multiarray")
ALLOWED: dict[tuple[str, str], Any] = {
    **{(m, "_reconstruct"): _reconstruct for m in _NUMPY},
    **{(m, "scalar"): Opaque for m in _NUMPY},
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): Array,
    ("numpy", "dtype"): DType,
    ("_codecs", "encode"): _codecs.encode,  # how protocol-2 pickles carry bytes
    ("copy_reg", "_reconstructor"): _newobj_reconstructor,
    ("copyreg", "_reconstructor"): _newobj_reconstructor,
    ("__builtin__", "object"): object,
    ("builtins", "object"): object,
    ("__builtin__", "set"): set,  # a chumpy Ch keeps its `_dirty_vars` in a set
    ("builtins", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
    ("builtins", "frozenset"): frozenset,
    ("collections", "OrderedDict"): OrderedDict,
    ("chumpy.ch", "Ch"): Ch,
    **{(f"scipy.sparse.{mod}", f"{fmt}_matrix"): Sparse for fmt in ("csc", "csr", "coo") for mod in (fmt, f"_{fmt}")},
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _first,
    ("torch._utils", "_rebuild_parameter_with_state"): _first,
}
TORCH_TYPES = {
    "Size",
    "device",
    "float16",
    "float32",
    "float64",
    "bfloat16",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "bool",
    "UntypedStorage",
}


def _resolve(module: str, name: str, extra: frozenset[str]):
    if (module, name) in ALLOWED:
        return ALLOWED[(module, name)]
    if module == "torch" and (name.endswith("Storage") or name in TORCH_TYPES):
        return type(name, (Opaque,), {"qualname": f"torch.{name}"})
    if f"{module}.{name}" in extra:
        return type(name, (Opaque,), {"qualname": f"{module}.{name}"})
    return None


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, extra: frozenset[str], persistent: Callable | None):
        super().__init__(file, encoding="latin1")  # Python 2 era files (FLAME) need latin-1
        self._extra = extra
        self._persistent = persistent

    def find_class(self, module, name):
        found = _resolve(module, name, self._extra)
        if found is None:
            raise UnsafeFileError(f"the pickle asks for the global {module}.{name}")
        return found

    def persistent_load(self, pid):
        if self._persistent is None:
            raise UnsafeFileError("the pickle uses persistent ids outside a PyTorch checkpoint")
        return self._persistent(pid)


def restricted_load(file: BinaryIO, extra=(), persistent: Callable | None = None) -> Any:
    """Unpickle `file` as inert data. Raises UnsafeFileError or ValidationError (message fragment)."""
    try:
        return RestrictedUnpickler(file, frozenset(extra), persistent).load()
    except (UnsafeFileError, ValidationError):
        raise
    except Exception as exc:  # truncated, not a pickle, malformed opcodes
        raise ValidationError(f"it is not a readable pickle ({type(exc).__name__}: {exc})") from None
