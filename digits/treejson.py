"""A pytree as JSON plus named arrays: the tree part of `digits.archive` files.

`encode_tree` walks a tree with `autodiff.tree.tree_flatten_with_path`, puts each leaf
into `arrays` under a name made of its path (`params/0/w`; dict keys percent-encoded, a
lone leaf `%root`) and returns the structure as JSON: `null` (None), `{"list": [...]}`,
`{"tuple": [...]}`, `{"dict": {key: ...}}`, `{"namedtuple": {"module", "name", "fields":
[[field, node], ...]}}` or a leaf `{"array": name}`, with `"python": "int" | "float" |
"bool"` for a leaf that was that Python type. `decode_tree` is its inverse: it rebuilds
the `TreeDef` and calls `tree_unflatten`, so what was saved comes back exactly, container
types included. Every malformed node raises CheckpointError.
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import numpy as np

from autodiff.tree import LEAF, TreeDef, tree_flatten_with_path, tree_unflatten
from nets.errors import CheckpointError

ALLOWED_KINDS = "biufc"  # bool and numbers: nothing that needs pickle
_PYTHON_TYPES = {"bool": bool, "int": int, "float": float}

Tree = Any


def encode_tree(tree: Tree, arrays: dict, path: str) -> Any:
    """The JSON description of `tree`; its arrays go into `arrays`, named by their paths."""
    try:
        pairs, treedef = tree_flatten_with_path(tree)
    except TypeError as error:  # dict keys that cannot be sorted together
        raise CheckpointError(f"cannot save {path}: {error}; dict keys must be str") from None
    nodes = [_encode_leaf(where, leaf, arrays, path) for where, leaf in pairs]
    return _encode_node(treedef, iter(nodes), path)


def _encode_leaf(where: tuple, leaf: Any, arrays: dict, path: str) -> dict:
    python = next((n for n, t in _PYTHON_TYPES.items() if type(leaf) is t), None)
    if python is None and not isinstance(leaf, (np.ndarray, np.generic)):
        raise CheckpointError(
            f"cannot save {path}: the leaf at {_where(where)} is a {type(leaf).__name__}; "
            "only numpy arrays and Python int/float/bool can be saved"
        )
    array = np.asarray(leaf)
    if array.dtype.kind not in ALLOWED_KINDS:
        raise CheckpointError(
            f"cannot save {path}: the array at {_where(where)} has dtype {array.dtype}; only "
            "bool and numeric arrays can be saved (object arrays would need pickle)"
        )
    name = "/".join(_component(str(key)) for key in where) if where else "%root"
    arrays[name] = array
    return {"array": name} if python is None else {"array": name, "python": python}


def _encode_node(treedef: TreeDef, leaves: Iterator[dict], path: str) -> Any:
    kind = treedef.kind
    if kind == "leaf":
        return next(leaves)
    if kind == "none":
        return None
    children = [_encode_node(child, leaves, path) for child in treedef.children]
    if kind == "dict":
        for key in treedef.data:
            if not isinstance(key, str):
                raise CheckpointError(f"cannot save {path}: dict key {key!r} is not a str")
        return {"dict": dict(zip(treedef.data, children))}
    if kind == "namedtuple":
        cls = treedef.data
        return {"namedtuple": {"module": cls.__module__, "name": cls.__qualname__,
                               "fields": [[f, c] for f, c in zip(cls._fields, children)]}}
    return {kind: children}


def _component(key: str) -> str:
    """A dict key as one member-name component: unique, free of '/', never '', '.', '..'."""
    text = quote(key, safe="")
    if text == "":
        return "%"  # quote() never emits a lone '%', so this cannot collide
    if text.strip(".") == "":
        return text.replace(".", "%2E")
    return text


def _where(where: tuple) -> str:
    return "/".join(map(str, where)) or "the root"


def decode_tree(node: Any, values: dict, used: set, path: str) -> Tree:
    leaves: list = []
    treedef = _decode_node(node, values, used, leaves, path)
    return tree_unflatten(treedef, leaves)


def _decode_node(node: Any, values: dict, used: set, leaves: list, path: str) -> TreeDef:
    if node is None:
        return TreeDef("none", None, ())
    if not (isinstance(node, dict) and len(node) in (1, 2)):
        raise CheckpointError(f"{path} is damaged: meta.json has a malformed tree node")
    if "array" in node and set(node) <= {"array", "python"}:
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
        leaves.append(_leaf(values[name], node.get("python"), name, path))
        return LEAF
    (kind, children), = node.items() if len(node) == 1 else ((None, None),)
    if kind == "dict" and isinstance(children, dict):
        keys = tuple(sorted(children))
        return TreeDef("dict", keys, tuple(
            _decode_node(children[k], values, used, leaves, path) for k in keys))
    if kind in ("list", "tuple") and isinstance(children, list):
        return TreeDef(kind, None, tuple(
            _decode_node(c, values, used, leaves, path) for c in children))
    if kind == "namedtuple" and isinstance(children, dict):
        cls = _namedtuple_class(children, path)
        return TreeDef("namedtuple", cls, tuple(
            _decode_node(c, values, used, leaves, path) for _, c in children["fields"]))
    raise CheckpointError(f"{path} is damaged: meta.json has a malformed tree node")


def _namedtuple_class(node: dict, path: str) -> type:
    """The namedtuple class a tree node names: the very class when its module is already
    imported (nothing is imported on a file's say-so), else a namedtuple of the same name
    and fields."""
    module, name, pairs = node.get("module"), node.get("name"), node.get("fields")
    if not (isinstance(module, str) and isinstance(name, str) and isinstance(pairs, list)
            and all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)
                    for p in pairs)):
        raise CheckpointError(f"{path} is damaged: meta.json has a malformed namedtuple node")
    field_names = tuple(p[0] for p in pairs)
    found: Any = sys.modules.get(module)
    for part in name.split("."):
        found = getattr(found, part, None)
    if isinstance(found, type) and issubclass(found, tuple) and \
            getattr(found, "_fields", None) == field_names:
        return found
    try:
        return collections.namedtuple(name.rsplit(".", 1)[-1], field_names)
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{path} is damaged: bad namedtuple {name!r} ({error})") from None


def _leaf(array: np.ndarray, python: Any, name: str, path: str) -> Any:
    if python is None:
        return array
    kinds = {"bool": "b", "int": "iu", "float": "f"}
    if python not in kinds or array.shape != () or array.dtype.kind not in kinds[python]:
        raise CheckpointError(
            f"{path} is damaged: array {name!r} cannot be the Python {python!r} meta.json says"
        )
    return _PYTHON_TYPES[python](array.item())
