"""Model and training-checkpoint files: one `.npz` zip of `.npy` arrays plus `meta.json`.

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

A tree node is `null` (None), `{"list": [...]}`, `{"tuple": [...]}`, `{"dict": {key: ...}}`
(keys sorted) or a leaf `{"array": name}`; a leaf that was a Python int/float/bool also has
`"python": "int" | "float" | "bool"` and comes back as that Python type (it is stored as a
0-d array). Numpy scalars come back as 0-d arrays.

Invariants:
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
from urllib.parse import quote

import numpy as np

from digits.files import atomic_write, write_error
from nets.errors import CheckpointError

FORMAT_VERSION = 1
META_MEMBER = "meta.json"
MAX_META_BYTES = 16 * 2**20
# A .npy header (magic, version, length, dict) is far below this; numpy itself caps it at 10000.
_MAX_NPY_HEADER = 65536
_ALLOWED_KINDS = "biufc"
_PYTHON_TYPES = {"bool": bool, "int": int, "float": float}
# A fixed timestamp makes identical saves byte-identical.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
# What malformed bytes can make zipfile, zlib, json and np.lib.format raise while reading.
_READ_ERRORS = (
    zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, KeyError,
    IndexError, TypeError, OverflowError, struct.error, zlib.error, lzma.LZMAError,
    NotImplementedError, RuntimeError, MemoryError, SyntaxError, UnicodeError,
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
    tree_json = _encode_tree(tree, (), arrays, path)
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


def _encode_tree(node: Tree, where: tuple[str, ...], arrays: dict, path: str) -> Any:
    if node is None:
        return None
    if isinstance(node, dict):
        for key in node:
            if not isinstance(key, str):
                raise CheckpointError(
                    f"cannot save {path}: dict key {key!r} at {_where(where)} is not a str"
                )
        return {"dict": {k: _encode_tree(node[k], (*where, _component(k)), arrays, path)
                         for k in sorted(node)}}
    if isinstance(node, (list, tuple)):
        children = [_encode_tree(c, (*where, str(i)), arrays, path) for i, c in enumerate(node)]
        return {"tuple" if isinstance(node, tuple) else "list": children}
    python = next((n for n, t in _PYTHON_TYPES.items() if type(node) is t), None)
    if python is None and not isinstance(node, (np.ndarray, np.generic)):
        raise CheckpointError(
            f"cannot save {path}: the leaf at {_where(where)} is a {type(node).__name__}; "
            "only numpy arrays and Python int/float/bool can be saved"
        )
    array = np.asarray(node)
    if array.dtype.kind not in _ALLOWED_KINDS:
        raise CheckpointError(
            f"cannot save {path}: the array at {_where(where)} has dtype {array.dtype}; only "
            "bool and numeric arrays can be saved (object arrays would need pickle)"
        )
    name = "/".join(where) if where else "%root"
    arrays[name] = array
    return {"array": name} if python is None else {"array": name, "python": python}


def _component(key: str) -> str:
    """A dict key as one member-name component: unique, free of '/', never '', '.', '..'."""
    text = quote(key, safe="")
    if text == "":
        return "%"  # quote() never emits a lone '%', so this cannot collide
    if text.strip(".") == "":
        return text.replace(".", "%2E")
    return text


def _where(where: tuple[str, ...]) -> str:
    return "/".join(where) or "the root"


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
        with open(path, "rb") as f:
            return _read(f, path)
    except CheckpointError:
        raise
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
        values = {
            name: _read_member(zf, infos[name + ".npy"], shape, dtype, path)
            for name, (shape, dtype) in arrays.items()
        }
    used: set[str] = set()
    tree = _decode_tree(header.get("tree"), values, used, path)
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
        if dtype.kind not in _ALLOWED_KINDS or dtype.hasobject:
            raise CheckpointError(
                f"{path}: array {name!r} has dtype {dtype_str!r}; only bool and numeric "
                "arrays are allowed (object arrays would need pickle); refused"
            )
        arrays[name] = (tuple(shape), dtype)
    return arrays


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


def _decode_tree(node: Any, values: dict, used: set, path: str) -> Tree:
    if node is None:
        return None
    if isinstance(node, dict) and len(node) == 1 and "dict" in node:
        children = node["dict"]
        if isinstance(children, dict):
            return {k: _decode_tree(c, values, used, path) for k, c in children.items()}
    elif isinstance(node, dict) and len(node) == 1 and ("list" in node or "tuple" in node):
        children = node.get("list", node.get("tuple"))
        if isinstance(children, list):
            decoded = [_decode_tree(c, values, used, path) for c in children]
            return decoded if "list" in node else tuple(decoded)
    elif isinstance(node, dict) and "array" in node and set(node) <= {"array", "python"}:
        name = node["array"]
        if not isinstance(name, str) or name not in values:
            raise CheckpointError(
                f"{path} is damaged: the tree in meta.json refers to a missing array {name!r}"
            )
        if name in used:
            raise CheckpointError(
                f"{path} is damaged: the tree in meta.json uses array {name!r} twice"
            )
        used.add(name)
        return _leaf(values[name], node.get("python"), name, path)
    raise CheckpointError(f"{path} is damaged: meta.json has a malformed tree node")


def _leaf(array: np.ndarray, python: Any, name: str, path: str) -> Any:
    if python is None:
        return array
    kinds = {"bool": "b", "int": "iu", "float": "f"}
    if python not in kinds or array.shape != () or array.dtype.kind not in kinds[python]:
        raise CheckpointError(
            f"{path} is damaged: array {name!r} cannot be the Python {python!r} meta.json says"
        )
    return _PYTHON_TYPES[python](array.item())


# ---------------------------------------------------------------------------------- models

def save_model(path: str | os.PathLike, params: list[dict], meta: dict) -> None:
    """Save MLP params (a list of `{"w": (fan_in, fan_out), "b": (fan_out,)}`) as a model.

    `meta["layer_sizes"]` is filled in from the shapes when absent and checked when given;
    "kind" is set to "model" and "model" defaults to "mlp".
    """
    path = os.fspath(path)
    meta = {**meta, "kind": "model"}
    meta.setdefault("model", "mlp")
    if meta["model"] == "mlp":
        if not (isinstance(params, list) and params
                and all(isinstance(p, dict) and set(p) == {"w", "b"} for p in params)):
            raise CheckpointError(
                f"cannot save {path}: MLP params must be a non-empty list of {{'w', 'b'}} dicts"
            )
        params = [{k: np.asarray(v) for k, v in layer.items()} for layer in params]
        if "layer_sizes" not in meta:
            meta["layer_sizes"] = [int(params[0]["w"].shape[0])] + [
                int(layer["w"].shape[-1]) for layer in params
            ]
        _check_mlp(params, meta["layer_sizes"], f"cannot save {path}")
        meta["layer_sizes"] = [int(n) for n in meta["layer_sizes"]]
    save(path, {"params": params}, meta)


def load_model(
    path: str | os.PathLike,
    *,
    expect_input_size: int | None = None,
    expect_classes: int | None = None,
) -> tuple[list[dict], dict]:
    """Load a model saved by `save_model`: returns `(params, meta)`.

    Checks the kind, and for MLPs that the layers' shapes match `meta["layer_sizes"]` and
    that the weights are finite; with `expect_input_size`/`expect_classes`, that the model
    fits the data. Any mismatch raises CheckpointError.
    """
    path = os.fspath(path)
    tree, meta = load(path)
    if meta["kind"] != "model":
        raise CheckpointError(
            f"{path} is a {meta['kind']!r} file, not a model; give a model file saved by train.py"
        )
    if not (isinstance(tree, dict) and set(tree) == {"params"}):
        raise CheckpointError(f"{path} is damaged: a model file holds exactly one 'params' tree")
    params = tree["params"]
    if meta.get("model", "mlp") != "mlp":
        return params, meta
    layer_sizes = meta.get("layer_sizes")
    _check_mlp(params, layer_sizes, f"{path} is damaged")
    for l, layer in enumerate(params, start=1):
        for key in ("w", "b"):
            if not np.isfinite(layer[key]).all():
                raise CheckpointError(
                    f"{path}: layer {l} {key} contains NaN or infinite values; re-train the model"
                )
    for expected, actual, what in ((expect_input_size, layer_sizes[0], "inputs"),
                                   (expect_classes, layer_sizes[-1], "classes")):
        if expected is not None and expected != actual:
            data_word = "the data has" if what == "inputs" else "the data needs"
            raise CheckpointError(
                f"model {path} expects {actual} {what} but {data_word} {expected}; "
                "use a model trained on this kind of data, or train a new one"
            )
    return params, meta


def _check_mlp(params: Any, layer_sizes: Any, context: str) -> None:
    """Raise CheckpointError unless `params` is an MLP whose shapes follow `layer_sizes`."""
    if not (isinstance(layer_sizes, (list, tuple)) and len(layer_sizes) >= 2
            and all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1
                    for n in layer_sizes)):
        raise CheckpointError(
            f"{context}: layer_sizes must be a list of at least two positive ints, "
            f"got {layer_sizes!r}"
        )
    if not (isinstance(params, list)
            and all(isinstance(p, dict) and set(p) == {"w", "b"} for p in params)):
        raise CheckpointError(f"{context}: params are not a list of {{'w', 'b'}} layers")
    if len(params) != len(layer_sizes) - 1:
        raise CheckpointError(
            f"{context}: it has {len(params)} layers but layer_sizes {list(layer_sizes)} "
            f"describe {len(layer_sizes) - 1}"
        )
    for l, layer in enumerate(params, start=1):
        want = {"w": (layer_sizes[l - 1], layer_sizes[l]), "b": (layer_sizes[l],)}
        for key, shape in want.items():
            value = layer[key]
            if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
                raise CheckpointError(f"{context}: layer {l} {key} is not a float array")
            if value.shape != tuple(int(n) for n in shape):
                raise CheckpointError(
                    f"{context}: layer {l} {key} has shape {value.shape}, but layer_sizes "
                    f"{list(layer_sizes)} need {tuple(int(n) for n in shape)}"
                )
