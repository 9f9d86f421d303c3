"""Import the original notebook's pickled parameters without trusting the pickle.

The notebook saved `{"W1": (fan_out, fan_in), "b1": (fan_out, 1), ...}` with `pickle.dump`
(protocol 3) and computed `W @ A + b` on column batches. A pickle can name any importable
callable and call it while loading, so `load_notebook_params` uses an unpickler whose
`find_class` admits only the globals that an ndarray's pickle names, and refuses every other
global with CheckpointError before anything from the stream runs. A first pass over the
opcodes (`pickletools.genops`, which builds nothing) refuses malformed streams, opcodes that
a dict of arrays never uses, and GLOBAL opcodes naming anything else; `find_class` then
admits only:

    numpy.core.multiarray._reconstruct, numpy._core.multiarray._reconstruct,
    numpy.ndarray, numpy.dtype

Even these are not handed out as the real NumPy objects: NumPy's own `__setstate__` trusts its
input (a dtype's pickled flags can mark float64 as holding object pointers), so each name
resolves to a small stand-in here that checks the state it is given and builds the array
itself with `np.frombuffer`. `numpy.ndarray` is a token `_reconstruct` accepts and nobody can
call; `numpy.dtype` builds only plain bool/int/float/complex dtypes from a string. Protocol 5
writes each array as `numpy._core.numeric._frombuffer(bytearray, dtype, shape, order)` with
the data in-band (BYTEARRAY8): that name resolves to a stand-in that checks its arguments
and copies the bytes. Out-of-band buffers (NEXT_BUFFER, READONLY_BUFFER) would need data
from outside the file and are refused, as are numpy scalars, object arrays and protocols
0-2 (which encode bytes through `_codecs.encode`): the importer reads pickle protocols 3, 4
and 5, what `pickle.dump` writes by default.

After loading, the structure is checked (keys W1..WL and b1..bL, shapes that chain, finite
floats) and converted to this project's layout, `{"w": W.T, "b": b.ravel()}` as C-contiguous
float32. Every problem raises CheckpointError naming the file.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import re
from typing import Any

import numpy as np

from digits.files import NotRegularFile, open_regular
from nets.errors import CheckpointError

MAX_PICKLE_BYTES = 256 * 2**20


class _Refused(Exception):
    """Raised by the stand-ins below; turned into a CheckpointError naming the file."""


class _NdarrayToken:
    """`numpy.ndarray` in the stream: `_reconstruct` accepts it; it cannot be called."""

    def __repr__(self) -> str:
        return "numpy.ndarray"


_NDARRAY = _NdarrayToken()


class _DtypeStandIn:
    """What `numpy.dtype(spec, align, copy)` yields in the stream; BUILD may set byte order."""

    def __init__(self, spec: Any, align: Any = False, copy: Any = True) -> None:
        if not isinstance(spec, str) or not re.fullmatch(r"[biufc][0-9]{1,2}", spec):
            raise _Refused(f"it builds the dtype {spec!r}, not a plain numeric one")
        self.dtype = np.dtype(spec)

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 8
                and state[0] == 3 and state[1] in ("<", ">", "|", "=")
                and state[2:] == (None, None, None, -1, -1, 0)):
            raise _Refused(f"it gives the dtype {self.dtype} the unusual state {state!r:.80}")
        if state[1] in "<>":
            self.dtype = self.dtype.newbyteorder(state[1])


class _ArrayStandIn:
    """What `_reconstruct(ndarray, ...)` yields; BUILD fills it from the stream's bytes."""

    array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5):
            raise _Refused("it gives an array an unusual state")
        version, shape, dtype, fortran, raw = state
        if not (version == 1 and isinstance(shape, tuple)
                and all(type(n) is int and n >= 0 for n in shape)
                and isinstance(dtype, _DtypeStandIn) and isinstance(fortran, bool)
                and isinstance(raw, bytes)):
            raise _Refused("it gives an array an unusual state")
        count = 1
        for n in shape:
            count *= n
        if count * dtype.dtype.itemsize != len(raw):
            raise _Refused(f"an array of shape {shape} does not match its {len(raw)} bytes")
        flat = np.frombuffer(raw, dtype=dtype.dtype)
        self.array = flat.reshape(shape, order="F" if fortran else "C").copy()


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> _ArrayStandIn:
    if subtype is not _NDARRAY:
        raise _Refused(f"it asks numpy to build a {type(subtype).__name__}, not a plain array")
    return _ArrayStandIn()


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> _ArrayStandIn:
    """Protocol 5's array: a copy of `buffer` as `dtype` and `shape`, checked first. It is
    handed back wrapped, like `_reconstruct`'s, so that no real ndarray (whose own
    `__setstate__` trusts its input) is ever within reach of the stream's BUILD."""
    if not (isinstance(buffer, (bytes, bytearray)) and isinstance(dtype, _DtypeStandIn)
            and isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)
            and order in ("C", "F")):
        raise _Refused("it gives an array unusual arguments")
    count = 1
    for n in shape:
        count *= n
    if count * dtype.dtype.itemsize != len(buffer):
        raise _Refused(f"an array of shape {shape} does not match its {len(buffer)} bytes")
    built = _ArrayStandIn()
    built.array = np.frombuffer(bytes(buffer), dtype=dtype.dtype).reshape(shape, order=order).copy()
    return built


_ALLOWED = {
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DtypeStandIn,
}


# The opcodes that `pickle.dump` (protocols 3-5) uses for a dict of arrays, plus plain
# lists, ints and floats. Anything else (out-of-band buffers, extension codes, persistent
# ids, the INST/OBJ/NEWOBJ ways to call classes, protocol 0 text opcodes) is refused unread.
_OPCODES = frozenset({
    "PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK",
    "BINPUT", "LONG_BINPUT", "MEMOIZE", "BINGET", "LONG_BINGET",
    "NONE", "NEWTRUE", "NEWFALSE", "BININT", "BININT1", "BININT2", "LONG1", "BINFLOAT",
    "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
    "BYTEARRAY8",
    "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_LIST", "LIST", "APPEND",
    "APPENDS", "EMPTY_DICT", "DICT", "SETITEM", "SETITEMS",
    "GLOBAL", "STACK_GLOBAL", "REDUCE", "BUILD",
})


_PROTOCOLS = "this importer reads pickle protocols 3, 4 and 5 (what pickle.dump writes by default)"


def _protocol(raw: bytes) -> int | str:
    return raw[1] if raw[:1] == b"\x80" and len(raw) > 1 else "0 or 1"


def _prescan(raw: bytes, path: str) -> None:
    """Walk the opcodes without building anything: refuse unneeded opcodes and globals,
    and protocols other than 3-5."""
    end = None
    protocol = _protocol(raw)
    old = "" if protocol in (3, 4, 5) else f" (and it is protocol {protocol}; {_PROTOCOLS})"
    try:
        for op, arg, pos in pickletools.genops(raw):
            if op.name in ("NEXT_BUFFER", "READONLY_BUFFER"):
                raise CheckpointError(
                    f"refused to load {path}: it uses out-of-band buffers (pickle protocol "
                    "5 with a buffer_callback), whose data is not in the file; save the "
                    "arrays in-band with a plain pickle.dump")
            if op.name not in _OPCODES:
                raise CheckpointError(
                    f"refused to load {path}: it uses the pickle opcode {op.name}, which a "
                    f"parameter file never needs{old}"
                )
            if op.name == "GLOBAL":
                module, _, name = arg.partition(" ")
                if (module, name) not in _ALLOWED:
                    raise CheckpointError(
                        f"refused to load {path}: it references {module}.{name}, which a "
                        f"parameter file never needs (loading it could run arbitrary code){old}"
                    )
            end = pos + 1
    except CheckpointError:
        raise
    except Exception as exc:  # pickletools raises ValueError and friends on malformed bytes
        raise CheckpointError(
            f"{path} is not a readable parameter pickle ({exc}); give the notebook's params file"
        ) from exc
    if end != len(raw):
        raise CheckpointError(f"{path} is damaged: it has extra bytes after the pickle")
    if old:
        raise CheckpointError(f"refused to load {path}: it is a pickle of protocol {protocol}; "
                              f"{_PROTOCOLS}")


class _ParamsUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals in `_ALLOWED`, to the stand-ins."""

    def __init__(self, file: Any, path: str) -> None:
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise CheckpointError(
                f"refused to load {self.path}: it references {module}.{name}, which a "
                "parameter file never needs (loading it could run arbitrary code)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("it uses persistent ids")


def load_notebook_params(path: str | os.PathLike) -> tuple[list[dict], list[int]]:
    """Read the notebook's pickle safely: returns `(params, layer_sizes)`.

    `params` is `[{"w": (fan_in, fan_out), "b": (fan_out,)}, ...]` in float32 and
    `layer_sizes` is e.g. `[784, 100, 64, 28, 10]`. Raises CheckpointError for a missing,
    damaged or foreign file, and for any pickle that names a global outside numpy's array
    rebuilding functions (refused before anything from it runs).
    """
    path = os.fspath(path)
    raw = _read_bytes(path)
    _prescan(raw, path)
    stream = io.BytesIO(raw)
    try:
        obj = _ParamsUnpickler(stream, path).load()
    except CheckpointError:
        raise
    except _Refused as exc:
        raise CheckpointError(f"refused to load {path}: {exc}") from None
    except Exception as exc:  # only the stand-ins above ran: any error means bad bytes
        raise CheckpointError(
            f"{path} is not a readable parameter pickle ({type(exc).__name__}: {exc}); "
            "give the notebook's params file"
        ) from exc
    if stream.tell() != len(raw):
        raise CheckpointError(f"{path} is damaged: it has extra bytes after the pickle")
    if isinstance(obj, dict):
        obj = {k: _built(v, path) for k, v in obj.items()}
    return _convert(obj, path)


def _built(value: Any, path: str) -> Any:
    if isinstance(value, _ArrayStandIn):
        if value.array is None:
            raise CheckpointError(f"{path} is damaged: an array in it has no data")
        return value.array
    return value


def _read_bytes(path: str) -> bytes:
    try:
        with open_regular(path) as f:
            raw = f.read(MAX_PICKLE_BYTES + 1)
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path}: no such parameter file; check the path") from exc
    except NotRegularFile as exc:
        raise CheckpointError(f"{exc}; give the notebook's parameter file") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(raw) > MAX_PICKLE_BYTES:
        raise CheckpointError(f"{path} is larger than any parameter file should be; refused")
    return raw


def _convert(obj: Any, path: str) -> tuple[list[dict], list[int]]:
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{path} holds a {type(obj).__name__}, not the dict of W1.., b1.. arrays expected"
        )
    keys = [k for k in obj if isinstance(k, str) and re.fullmatch(r"[Wb][1-9][0-9]*", k)]
    n_layers = sum(k.startswith("W") for k in keys)
    expected = {f"{p}{l}" for p in "Wb" for l in range(1, n_layers + 1)}
    if n_layers < 1 or set(obj) != expected:
        found = sorted(map(repr, obj))
        raise CheckpointError(
            f"{path} does not hold keys W1..WL, b1..bL (found {', '.join(found) or 'none'})"
        )
    params, sizes = [], []
    for l in range(1, n_layers + 1):
        W, b = obj[f"W{l}"], obj[f"b{l}"]
        for key, value in ((f"W{l}", W), (f"b{l}", b)):
            if type(value) is not np.ndarray or value.dtype.kind != "f":
                raise CheckpointError(f"{path}: {key} is not a float array")
        if W.ndim != 2 or 0 in W.shape:
            raise CheckpointError(f"{path}: W{l} has shape {W.shape}; expected (fan_out, fan_in)")
        fan_out, fan_in = W.shape
        if b.shape not in ((fan_out, 1), (fan_out,)):
            raise CheckpointError(
                f"{path}: b{l} has shape {b.shape}; W{l} {W.shape} needs ({fan_out}, 1)"
            )
        if sizes and fan_in != sizes[-1]:
            raise CheckpointError(
                f"{path}: W{l} takes {fan_in} inputs but layer {l - 1} has {sizes[-1]} outputs"
            )
        with np.errstate(all="ignore"):  # overflow or NaN show up as non-finite, refused below
            w32 = np.ascontiguousarray(W.T, dtype=np.float32)
            b32 = np.ascontiguousarray(b.reshape(fan_out), dtype=np.float32)
        if not (np.isfinite(w32).all() and np.isfinite(b32).all()):
            raise CheckpointError(f"{path}: layer {l} holds NaN or infinite (in float32) values")
        sizes = sizes or [fan_in]
        sizes.append(fan_out)
        params.append({"w": w32, "b": b32})
    return params, sizes


def import_notebook_params(pickle_path: str | os.PathLike, save: str | os.PathLike) -> list[int]:
    """Convert the notebook's parameters into a model file at `save` (the seed recipe's
    settings with the notebook's layer sizes). Returns the layer sizes."""
    from dataclasses import replace
    from pathlib import Path

    from digits.modelfile import save_model
    from nets.config import SEED

    params, sizes = load_notebook_params(pickle_path)
    save_model(save, params, replace(SEED, layers=tuple(sizes)).check(), {
        "dataset": "mnist", "class_names": [str(i) for i in range(10)], "image_shape": [28, 28],
        "history": [], "source": f"imported from {Path(pickle_path).name}"})
    return sizes
