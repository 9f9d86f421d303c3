"""The container of model and checkpoint files: one `.npz` zip of `.npy` arrays plus
`meta.json`. What goes in it (and what a model file must hold) is `digits.modelfile`'s.

Format (version 1). The file is a zip archive that `np.load(path, allow_pickle=False)` can
read. Every array of the pytree is one stored (uncompressed) `.npy` member named after its
path in the tree, e.g. `params/0/w.npy` (dict keys are percent-encoded so that any string is
a valid name component; a tree that is a single leaf uses `%root.npy`). The member
`meta.json` is a UTF-8 JSON object:

    {"format_version": 1,
     "kind": "model",                                   # or "checkpoint", ...
     "meta": {...},                                     # the caller's metadata, less "kind"
     "arrays": {"params/0/w": {"shape": [784, 100], "dtype": "<f4"}, ...},
     "tree": {"dict": {"params": {"list": [{"dict": {"b": {"array": "params/0/b"}, ...}}]}}}}

The "tree" is written and read by `digits.treejson`, through `autodiff.tree`, so anything
`tree_flatten` takes apart (namedtuples included) is stored and comes back exactly; a leaf
that was a Python int/float/bool comes back as that type, numpy scalars as 0-d arrays.

Invariants:
- No size a file declares becomes an allocation unchecked: every array member must be
  stored uncompressed, its declared size must match its shape in meta.json and fit inside
  the file, and all arrays together must fit in `digits.limits.memory_limit()`.
- Nothing is ever pickled or unpickled: only bool and numeric dtypes are written, and every
  member is read with its header checked first, object dtypes refused.
- `load` returns exactly what `save` was given (tree structure, dtypes, shapes, values) or
  raises `CheckpointError`; every member must be listed in meta.json with its true shape and
  dtype, every listed array must be present, and the tree must use each array exactly once.
- `save` writes exactly to the path given (no suffix is added), atomically
  (`digits.files.atomic_write`): a reader, or a crash, sees the old file or the new one.
"""

from __future__ import annotations

import json
import lzma
import math
import os
import struct
import zipfile
import zlib
from typing import Any

import numpy as np

from digits.files import NotRegularFile, atomic_write, open_regular, write_error
from digits.limits import format_bytes, memory_limit
from digits.treejson import ALLOWED_KINDS, decode_tree, encode_tree
from nets.errors import CheckpointError

FORMAT_VERSION = 1
META_MEMBER = "meta.json"
MAX_META_BYTES = 16 * 2**20
# A .npy header (magic, version, length, dict) is far below this; numpy itself caps it at 10000.
_MAX_NPY_HEADER = 65536
# A fixed timestamp makes identical saves byte-identical.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
# What malformed bytes can make zipfile, zlib, json and np.lib.format raise while reading.
_READ_ERRORS = (
    zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, KeyError,
    IndexError, TypeError, OverflowError, struct.error, zlib.error, lzma.LZMAError,
    NotImplementedError, RuntimeError, SyntaxError, UnicodeError,
)

Tree = Any


# ---------------------------------------------------------------------------------- saving

def save(path: str | os.PathLike, tree: Tree, meta: dict) -> None:
    """Write `tree` (dicts with str keys, lists, tuples, None; array/int/float/bool leaves)
    and the JSON-serialisable `meta` (which must hold a "kind" string) to `path` atomically.

    Raises CheckpointError when the tree or meta cannot be stored or the file cannot be
    written; the previous file at `path`, if any, is then untouched.
    """
    path = os.fspath(path)
    arrays: dict[str, np.ndarray] = {}
    tree_json = encode_tree(tree, arrays, path)
    if not isinstance(meta, dict):
        raise CheckpointError(f"cannot save {path}: meta must be a dict, got {type(meta).__name__}")
    kind = meta.get("kind")
    if not isinstance(kind, str) or not kind:
        raise CheckpointError(
            f"cannot save {path}: meta needs a 'kind' string such as 'model' or 'checkpoint'"
        )
    header = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "meta": {k: v for k, v in meta.items() if k != "kind"},
        "arrays": {
            name: {"shape": list(a.shape), "dtype": a.dtype.str} for name, a in arrays.items()
        },
        "tree": tree_json,
    }
    try:
        meta_bytes = json.dumps(
            header, sort_keys=True, allow_nan=False, default=_json_default
        ).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"cannot save {path}: meta is not JSON-serialisable ({exc}); "
            "use str/int/float/bool/None, lists and dicts with str keys"
        ) from exc
    try:
        atomic_write(path, lambda f: _write_zip(f, arrays, meta_bytes))
    except OSError as exc:
        raise CheckpointError(write_error(path, exc)) from exc


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _write_zip(f: Any, arrays: dict[str, np.ndarray], meta_bytes: bytes) -> None:
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_DATE)
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
        zf.writestr(zipfile.ZipInfo(META_MEMBER, date_time=_ZIP_DATE), meta_bytes)


# --------------------------------------------------------------------------------- loading

def load(path: str | os.PathLike) -> tuple[Tree, dict]:
    """Read a file written by `save`: returns `(tree, meta)`, meta including "kind".

    Raises CheckpointError, naming the file and the problem, for anything that is not an
    intact file of a format version this program reads.
    """
    path = os.fspath(path)
    try:
        with open_regular(path) as f:
            return _read(f, path)
    except CheckpointError:
        raise
    except NotRegularFile as exc:
        raise CheckpointError(f"{exc}; give a model or checkpoint file") from None
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path}: no such model file; check the path") from exc
    except IsADirectoryError as exc:
        raise CheckpointError(f"{path} is a directory, not a model file") from exc
    except PermissionError as exc:
        raise CheckpointError(f"{path}: permission denied; check the file's permissions") from exc
    except RecursionError as exc:
        raise CheckpointError(f"{path} is damaged: meta.json is nested too deeply") from exc
    except _READ_ERRORS as exc:
        raise CheckpointError(
            f"{path} is damaged or not a model file ({type(exc).__name__}: {exc}); "
            "re-create it with train.py"
        ) from exc


def _read(f: Any, path: str) -> tuple[Tree, dict]:
    try:
        zf = zipfile.ZipFile(f)
    except zipfile.BadZipFile as exc:
        raise CheckpointError(
            f"{path} is not a model file (not an .npz/zip archive); give a file saved by train.py"
        ) from exc
    with zf:
        infos = {info.filename: info for info in zf.infolist()}
        if len(infos) != len(zf.infolist()):
            raise CheckpointError(f"{path} is damaged: it holds two members of the same name")
        header = _read_header(zf, infos, path)
        arrays = _check_arrays_listing(header.get("arrays"), path)
        expected = {name + ".npy" for name in arrays} | {META_MEMBER}
        extra = sorted(set(infos) - expected)
        if extra:
            raise CheckpointError(
                f"{path} is damaged: member {extra[0]!r} is not listed in meta.json"
            )
        for name in sorted(arrays):
            if name + ".npy" not in infos:
                raise CheckpointError(
                    f"{path} is damaged: array {name!r} listed in meta.json is missing"
                )
        _check_sizes(infos, arrays, os.fstat(f.fileno()).st_size, path)
        values = {
            name: _read_member(zf, infos[name + ".npy"], shape, dtype, path)
            for name, (shape, dtype) in arrays.items()
        }
    used: set[str] = set()
    tree = decode_tree(header.get("tree"), values, used, path)
    unused = sorted(set(values) - used)
    if unused:
        raise CheckpointError(
            f"{path} is damaged: array {unused[0]!r} is not used by the tree in meta.json"
        )
    meta = header.get("meta", {})
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} is damaged: 'meta' in meta.json is not an object")
    return tree, {**meta, "kind": header["kind"]}


def _read_header(zf: zipfile.ZipFile, infos: dict, path: str) -> dict:
    info = infos.get(META_MEMBER)
    if info is None:
        raise CheckpointError(
            f"{path} is not a model file of this program (it has no meta.json); "
            "give a file saved by train.py"
        )
    if info.file_size > MAX_META_BYTES:
        raise CheckpointError(f"{path} is damaged: meta.json is implausibly large")
    try:
        header = json.loads(zf.read(info).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is damaged: meta.json is not valid JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is damaged: meta.json is not a JSON object")
    if "format_version" not in header:
        raise CheckpointError(
            f"{path} has no format_version in meta.json; this program reads format version "
            f"{FORMAT_VERSION} (files saved by train.py)"
        )
    version = header["format_version"]
    if type(version) is not int or version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format version {version!r}, but this program reads format version "
            f"{FORMAT_VERSION}; use the program version that wrote it, or re-train"
        )
    if not isinstance(header.get("kind"), str):
        raise CheckpointError(f"{path} is damaged: meta.json has no 'kind' string")
    return header


def _check_arrays_listing(listing: Any, path: str) -> dict[str, tuple[tuple, np.dtype]]:
    if not isinstance(listing, dict):
        raise CheckpointError(f"{path} is damaged: meta.json has no 'arrays' object")
    arrays = {}
    for name, entry in listing.items():
        shape = entry.get("shape") if isinstance(entry, dict) else None
        dtype_str = entry.get("dtype") if isinstance(entry, dict) else None
        if not (isinstance(shape, list)
                and all(type(n) is int and n >= 0 for n in shape)
                and isinstance(dtype_str, str)):
            raise CheckpointError(
                f"{path} is damaged: meta.json lists array {name!r} without a valid shape/dtype"
            )
        try:
            dtype = np.dtype(dtype_str)
        except Exception as exc:  # numpy's dtype parser raises assorted types on bad strings
            raise CheckpointError(
                f"{path} is damaged: array {name!r} has unknown dtype {dtype_str!r}"
            ) from exc
        if dtype.kind not in ALLOWED_KINDS or dtype.hasobject:
            raise CheckpointError(
                f"{path}: array {name!r} has dtype {dtype_str!r}; only bool and numeric "
                "arrays are allowed (object arrays would need pickle); refused"
            )
        arrays[name] = (tuple(shape), dtype)
    return arrays


def _check_sizes(infos: dict, arrays: dict, file_size: int, path: str) -> None:
    """Refuse, before reading any array, sizes that no intact file of this size declares."""
    total = 0
    for name, (shape, dtype) in arrays.items():
        info = infos[name + ".npy"]
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size \
                or info.header_offset + info.compress_size > file_size:
            raise CheckpointError(
                f"{path} is damaged: array {name!r} claims {format_bytes(info.file_size)} but the "
                f"file has {format_bytes(file_size)} (arrays are stored uncompressed)")
        nbytes = math.prod(shape) * dtype.itemsize
        if not nbytes <= info.file_size <= nbytes + _MAX_NPY_HEADER:
            raise CheckpointError(f"{path} is damaged: the size of array {name!r} does not "
                                  "match its shape in meta.json")
        total += nbytes
    if total > memory_limit():
        raise CheckpointError(f"{path}: its arrays would take {format_bytes(total)}, more than "
                              f"the {format_bytes(memory_limit())} this machine allows")


def _read_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, shape: tuple, dtype: np.dtype, path: str
) -> np.ndarray:
    name = info.filename[: -len(".npy")]
    nbytes = math.prod(shape) * dtype.itemsize
    if not nbytes <= info.file_size <= nbytes + _MAX_NPY_HEADER:
        raise CheckpointError(
            f"{path} is damaged: the size of array {name!r} does not match its shape in meta.json"
        )
    with zf.open(info) as fp:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            file_shape, fortran, file_dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            file_shape, fortran, file_dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise CheckpointError(
                f"{path}: array {name!r} uses .npy version {version}, which is not supported"
            )
        if file_dtype.hasobject:
            raise CheckpointError(
                f"{path}: array {name!r} contains pickled objects; refused (model files hold "
                "numbers only, and loading pickles can run arbitrary code)"
            )
        if tuple(file_shape) != shape or file_dtype != dtype or file_dtype.str != dtype.str:
            raise CheckpointError(
                f"{path} is damaged: array {name!r} has shape {tuple(file_shape)} and dtype "
                f"{file_dtype.str}, but meta.json says {shape} and {dtype.str}"
            )
        data = fp.read(nbytes)
        if len(data) != nbytes or fp.read(1):
            raise CheckpointError(
                f"{path} is damaged: array {name!r} does not hold exactly its data"
            )
    array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return np.array(array, order="C", copy=True)
