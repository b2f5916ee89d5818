"""Read a pickle as data, never as code.

`pickle.load` executes whatever globals a file names (`os.system` in `__reduce__` is enough).
This unpickler resolves only a short allow-list of globals, and resolves each to an inert
stand-in that records what the file describes (an array's shape and byte length, a sparse
matrix's shape, a chumpy `Ch`'s value) without importing numpy, scipy, chumpy or torch.
Anything else raises UnsafeFileError naming the global: the same policy as
`torch.load(weights_only=True)`, but independent of the libraries being installed.

Safe is not enough: a file can also be hostile to the reader itself (a 2 MB pickle of nested
tuples used as a dict key overflows the C stack when hashed; a 3 GiB byte string, a punycode
encode of 30,000 characters, an array shape of huge integers). So the bytes are read under a
budget and `scan` walks the opcode stream first (pickletools.genops parses, it executes nothing)
with limits sized to what a real FLAME pickle or torch `data.pkl` holds; the unpickler runs only
on bytes that passed.
"""

from __future__ import annotations

import _codecs
import io
import pickle
import pickletools
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from .errors import UnsafeFileError, ValidationError


@dataclass(frozen=True)
class Limits:
    """Bounds for one kind of pickle. Real files sit orders of magnitude below each of them."""

    what: str  # for messages: "FLAME pickle", "PyTorch data.pkl"
    max_bytes: int  # the whole pickle
    max_string: int  # one str/bytes value (a FLAME shapedirs array is 48 MB of float64)
    max_ops: int = 2_000_000  # opcodes (a checkpoint with 20,000 tensors needs under 1 million)
    max_depth: int = 100  # containers inside containers (real files: under 20)
    max_items: int = 1_000_000  # items in one list, tuple, dict or set
    max_int_bytes: int = 16  # one integer (shapes, steps and numels fit in 8 bytes)


# FLAME: ~55 MB, the largest array 48 MB (up to twice that as a protocol-2 UTF-8 string).
FLAME = Limits("FLAME pickle", max_bytes=256 << 20, max_string=128 << 20)
# torch data.pkl holds structure only (tensor bytes live in data/N): a few MB for large models.
TORCH = Limits("PyTorch data.pkl", max_bytes=64 << 20, max_string=16 << 20)
MAX_DIMS = 64  # numpy's own limit on array dimensions
MAX_ELEMENTS = 1 << 48  # no array or tensor of a pipeline comes near 2^48 elements


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
        code = str(self.args[0])[:8] if self.args else ""
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
        self.shape = _shape(shape)
        n = _elements(self.shape)
        itemsize = dtype.itemsize if isinstance(dtype, DType) else None
        if isinstance(raw, (bytes, str)) and itemsize and len(raw) != n * itemsize:
            raise ValidationError(
                f"an array of shape {self.shape} holds {len(raw)} bytes, not {n * itemsize}: "
                "the file is truncated or corrupt"
            )
        if isinstance(raw, list) and len(raw) != n:
            raise ValidationError(f"an array of shape {self.shape} holds {len(raw)} items: the file is corrupt")


def _shape(shape) -> tuple[int, ...]:
    """A shape as plain ints, refused when it is not one (the scan already bounds each integer)."""
    if not isinstance(shape, (tuple, list)) or len(shape) > MAX_DIMS:
        raise ValidationError(f"an array has a shape that is not a tuple of at most {MAX_DIMS} sizes")
    if not all(isinstance(n, int) and 0 <= n < MAX_ELEMENTS for n in shape):
        raise ValidationError("an array has a negative, non-integer or absurd size in its shape")
    return tuple(shape)


def _elements(shape: tuple[int, ...]) -> int:
    """The product of the dimensions, refused once it passes MAX_ELEMENTS (never a huge product)."""
    n = 1
    for d in shape:
        n *= d
        if n >= MAX_ELEMENTS:
            raise ValidationError(f"an array of shape {shape} would have more than 2^48 elements")
    return n


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
    """A tensor view: offset, size and stride must stay inside its storage (which the zip holds)."""

    def __init__(self, storage=None, offset=0, size=(), stride=None, *rest):
        self.storage, self.shape = storage, _shape(size)
        _elements(self.shape)
        if not isinstance(storage, Storage) or not isinstance(storage.numel, int):
            return
        if stride is None or not all(isinstance(s, int) for s in (offset, *stride)) or len(stride) != len(self.shape):
            return
        if 0 in self.shape:
            return
        last = offset + sum((n - 1) * s for n, s in zip(self.shape, stride, strict=True))
        if offset < 0 or last >= storage.numel:
            raise ValidationError(
                f"a tensor of shape {self.shape} reaches element {last} of storage {storage.key}, "
                f"which has {storage.numel}: the file is corrupt"
            )


class Storage(Opaque):
    def __init__(self, key: str, numel: int, kind: str = ""):
        self.key, self.numel, self.kind = key, numel, kind


def _reconstruct(cls, *_args):
    return Array() if cls is Array else Opaque()


def _newobj_reconstructor(cls, base, state):  # copy_reg._reconstructor of Python 2 pickles
    if base is not object:
        raise UnsafeFileError(f"copy_reg._reconstructor with base {base!r}")
    return cls.__new__(cls)


def _frombuffer(buf, dtype, shape, order):
    a = Array()
    a.shape = _shape(shape)
    n = _elements(a.shape)
    itemsize = dtype.itemsize if isinstance(dtype, DType) else None
    if isinstance(buf, (bytes, bytearray)) and itemsize and len(buf) != n * itemsize:
        raise ValidationError(f"an array of shape {a.shape} holds {len(buf)} bytes, not {n * itemsize}")
    return a


def _rebuild_tensor(storage, offset=0, size=(), stride=None, *rest):
    return Tensor(storage, offset, size, stride)


def _latin1_encode(text, encoding="utf-8", errors="strict"):
    """`_codecs.encode` as pickles use it (protocol-2 bytes, numpy arrays): latin1, nothing else.
    Other codecs are slow on purpose-built input (punycode on 30,000 characters took minutes)."""
    if encoding not in ("latin1", "latin-1") or errors != "strict" or not isinstance(text, str):
        raise ValidationError(
            f"the pickle asks _codecs.encode for the {str(encoding)[:40]!r} encoding; pickled bytes only use latin1"
        )
    return _codecs.encode(text, "latin1")


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
    ("_codecs", "encode"): _latin1_encode,  # how protocol-2 pickles carry bytes
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


class _Node:
    """What the scan knows of one stack value: how deep it nests and how many items it holds.
    A memo GET pushes the same node, so items added to a memoised container are counted once."""

    __slots__ = ("depth", "items")

    def __init__(self, depth: int = 0, items: int = 0):
        self.depth, self.items = depth, items


_FROM_MARK = {"TUPLE", "LIST", "DICT", "FROZENSET", "INST", "OBJ"}  # build a new container from the mark
_ADD_FROM_MARK = {"APPENDS", "SETITEMS", "ADDITEMS"}  # add the items above the mark to the container below
_ADD = {"APPEND": 1, "SETITEM": 2, "BUILD": 1}  # add the top n values to the container below them
_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
_GET = {"GET", "BINGET", "LONG_BINGET"}
_INTS = {"INT", "LONG", "LONG1", "LONG4"}


def scan(data: bytes, limits: Limits, start: int = 0) -> int:
    """Walk the opcodes of the pickle at `start` without executing anything; return where it ends.

    Refuses (ValidationError) more opcodes, deeper nesting, bigger containers, longer strings or
    bigger integers than `limits` allow. Nesting is tracked on a model of the unpickler's stack, so
    a tuple nested two million deep is refused before anything builds (or hashes) it. A memoised
    container that grows after being nested does not raise its parents' depth (propagating it would
    make the scan quadratic); only lists and dicts can grow so, and Python never hashes them and
    guards their repr and deallocation against deep recursion."""
    f = io.BytesIO(data)
    f.seek(start)
    stack: list[_Node] = []
    marks: list[int] = []
    memo: dict[Any, _Node] = {}

    def grow(node: _Node, children: list[_Node], n: int) -> None:
        node.items += n
        if children:
            node.depth = max(node.depth, 1 + max(c.depth for c in children))
        if node.depth > limits.max_depth:
            raise ValidationError(
                f"its {limits.what} nests containers more than {limits.max_depth} deep "
                "(real files nest under 20): it is built to crash the reader"
            )
        if node.items > limits.max_items:
            raise ValidationError(f"a container in its {limits.what} holds more than {limits.max_items:,} items")

    def pop_mark() -> list[_Node]:
        at = marks.pop()
        items = stack[at:]
        del stack[at:]
        return items

    try:
        for ops, (op, arg, _pos) in enumerate(pickletools.genops(f), 1):
            if ops > limits.max_ops:
                raise ValidationError(f"its {limits.what} has more than {limits.max_ops:,} opcodes")
            name = op.name
            if isinstance(arg, (str, bytes, bytearray)) and len(arg) > limits.max_string:
                raise ValidationError(
                    f"its {limits.what} holds a {len(arg):,}-byte value, more than the {limits.max_string:,} "
                    "a real file needs"
                )
            if name in _INTS and isinstance(arg, int) and arg.bit_length() > 8 * limits.max_int_bytes:
                raise ValidationError(f"its {limits.what} holds an integer of {arg.bit_length():,} bits")
            if name == "MARK":
                marks.append(len(stack))
            elif name == "POP_MARK":
                pop_mark()
            elif name in _FROM_MARK:
                items = pop_mark()
                node = _Node()
                grow(node, items, len(items))
                stack.append(node)
            elif name in _ADD_FROM_MARK:
                items = pop_mark()
                grow(stack[-1], items, len(items))
            elif name in _ADD:
                n = _ADD[name]
                items = stack[-n:]
                del stack[-n:]
                grow(stack[-1], items, 1)
            elif name in _PUT:
                memo[arg] = stack[-1]
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name in _GET:
                stack.append(memo[arg])
            elif name == "DUP":
                stack.append(stack[-1])
            elif name == "POP":
                if marks and marks[-1] == len(stack):
                    marks.pop()
                else:
                    stack.pop()
            elif name == "STOP":
                stack.pop()
            else:  # everything else pops a fixed number of values and pushes at most one
                n = len(op.stack_before)
                items = stack[len(stack) - n :] if n else []
                if len(items) != n:
                    raise IndexError("stack underflow")
                del stack[len(stack) - n :]
                for _ in op.stack_after:
                    node = _Node()
                    grow(node, items, 0)
                    stack.append(node)
    except ValidationError:
        raise
    except Exception as exc:  # truncated, not a pickle, malformed opcodes, stack or memo misuse
        raise ValidationError(f"it is not a readable pickle ({type(exc).__name__}: {exc})") from None
    return f.tell()


def read_budget(file: IO[bytes], limits: Limits) -> bytes:
    """At most `limits.max_bytes` of a stream (a zip member decompresses only as far as is read)."""
    data = file.read(limits.max_bytes + 1)
    if len(data) > limits.max_bytes:
        raise ValidationError(
            f"its {limits.what} is larger than {limits.max_bytes >> 20} MiB, far more than a real one "
            "(a decompression bomb, or not this kind of file)"
        )
    return data


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], extra: frozenset[str], persistent: Callable | None):
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


def restricted_load(file: IO[bytes], extra=(), persistent: Callable | None = None, limits: Limits = FLAME) -> Any:
    """Unpickle `file` as inert data: read under a byte budget, scan, then load only what passed.
    Raises UnsafeFileError or ValidationError (a message fragment; the validator adds file and fix)."""
    data = read_budget(file, limits)
    end = scan(data, limits)
    if end != len(data):
        raise ValidationError(
            f"its {limits.what} has {len(data) - end:,} bytes after the pickle's end (STOP): "
            "a real file has none, so something rides along"
        )
    try:
        return RestrictedUnpickler(io.BytesIO(data), frozenset(extra), persistent).load()
    except (UnsafeFileError, ValidationError):
        raise
    except RecursionError:  # the scan's depth limit is far below Python's; kept as a second guard
        raise ValidationError(f"its {limits.what} nests too deeply to read") from None
    except Exception as exc:  # malformed opcodes the scan let through
        raise ValidationError(f"it is not a readable pickle ({type(exc).__name__}: {exc})") from None
