"""Pytrees: nested containers of arrays, flattened to a list of leaves and a structure.

Containers are dicts (children in sorted key order; an OrderedDict keeps its own order,
and dict subclasses such as defaultdict come back as their own type), list, tuple,
namedtuple and None (a container with no children). Everything else is a leaf. Dict keys
must be comparable with each other (all strings, say), since their order is the order of
the leaves. `tree_unflatten(treedef,
tree_leaves(tree))` rebuilds `tree` exactly, container types and dict keys included.
"""

from __future__ import annotations

import functools
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from typing import Any, NamedTuple


class TreeDef(NamedTuple):
    """The structure of a pytree: a container kind, its static data and its children.

    `kind` is "leaf", "none", "dict", "dict subclass", "list", "tuple" or "namedtuple";
    `data` holds the dict keys in leaf order (for a dict subclass: its type, its default
    factory or None, and the keys) or the namedtuple class.
    """

    kind: str
    data: Any
    children: tuple

    @property
    def num_leaves(self) -> int:
        if self.kind == "leaf":
            return 1
        return sum(child.num_leaves for child in self.children)

    def __repr__(self) -> str:
        if self.kind == "leaf":
            return "*"
        if self.kind == "none":
            return "None"
        inner = ", ".join(repr(c) for c in self.children)
        if self.kind in ("dict", "dict subclass"):
            keys = self.data if self.kind == "dict" else self.data[2]
            inner = "{" + ", ".join(f"{k!r}: {c!r}" for k, c in zip(keys, self.children)) + "}"
            return inner if self.kind == "dict" else f"{self.data[0].__name__}({inner})"
        if self.kind == "list":
            return f"[{inner}]"
        if self.kind == "namedtuple":
            return f"{self.data.__name__}({inner})"
        return f"({inner},)" if len(self.children) == 1 else f"({inner})"


LEAF = TreeDef("leaf", None, ())


def _children(tree: Any) -> tuple[str, Any, list]:
    if tree is None:
        return "none", None, []
    if isinstance(tree, dict):
        keys = tuple(tree) if isinstance(tree, OrderedDict) else _sorted_keys(tree)
        children = [tree[k] for k in keys]
        if type(tree) is dict:
            return "dict", keys, children
        return "dict subclass", (type(tree), getattr(tree, "default_factory", None), keys), children
    if isinstance(tree, list):
        return "list", None, tree
    if isinstance(tree, tuple):
        if hasattr(type(tree), "_fields"):
            return "namedtuple", type(tree), list(tree)
        return "tuple", None, list(tree)
    return "leaf", None, []


def _sorted_keys(tree: dict) -> tuple:
    try:
        return tuple(sorted(tree))
    except TypeError:
        kinds = sorted({type(k).__name__ for k in tree})
        raise TypeError(
            f"pytree dict keys must be comparable to be put in order, but this dict mixes "
            f"keys of types {', '.join(kinds)}; use keys of one type (e.g. all str)"
        ) from None


def tree_flatten(tree: Any) -> tuple[list, TreeDef]:
    """Split `tree` into its leaves (in a fixed order) and its structure."""
    leaves: list = []
    return leaves, _flatten(tree, leaves)


def _flatten(tree: Any, leaves: list) -> TreeDef:
    if tree is not None and not isinstance(tree, _CONTAINERS):  # a leaf: the common case
        leaves.append(tree)
        return LEAF
    if type(tree) is dict:  # the common container, taken apart without calls
        try:
            data = tuple(sorted(tree))
        except TypeError:
            data = _sorted_keys(tree)  # raises, saying which key types were mixed
        kind, children = "dict", map(tree.__getitem__, data)
    else:
        kind, data, children = _children(tree)
    treedefs = []
    for child in children:
        if child is not None and not isinstance(child, _CONTAINERS):  # a leaf, without a call
            leaves.append(child)
            treedefs.append(LEAF)
        else:
            treedefs.append(_flatten(child, leaves))
    return _treedef((kind, data, tuple(treedefs)))


_CONTAINERS = (dict, list, tuple)
# TreeDef(kind, data, children) without the Python-level __new__ of a NamedTuple.
_treedef = functools.partial(tuple.__new__, TreeDef)


def tree_unflatten(treedef: TreeDef, leaves: list) -> Any:
    """Rebuild a tree of structure `treedef` from `leaves` (the inverse of tree_flatten)."""
    leaves = leaves if type(leaves) is list else list(leaves)
    remaining = iter(leaves)
    try:
        tree = _unflatten(treedef, remaining)
        complete = next(remaining, remaining) is remaining  # every leaf used
    except StopIteration:  # too few leaves
        complete = False
    if not complete:
        raise ValueError(
            f"tree_unflatten: the structure {treedef!r} has {treedef.num_leaves} leaves, "
            f"but {len(leaves)} were given"
        )
    return tree


def _unflatten(treedef: TreeDef, leaves) -> Any:
    kind, data, children = treedef
    if kind == "leaf":
        return next(leaves)
    if kind == "none":
        return None
    values = []
    for child in children:
        values.append(next(leaves) if child is LEAF else _unflatten(child, leaves))
    children = values
    if kind == "dict":
        return dict(zip(data, children))
    if kind == "dict subclass":
        cls, default_factory, keys = data
        if issubclass(cls, defaultdict):
            return cls(default_factory, zip(keys, children))
        return cls(zip(keys, children))
    if kind == "list":
        return children
    if kind == "namedtuple":
        return data(*children)
    return tuple(children)


def tree_paths(treedef: TreeDef) -> list[tuple]:
    """The path of every leaf of `treedef`, in flattening order: a tuple of the dict keys,
    list and tuple indices (ints) and namedtuple field names (strs) from the root down.
    A tree that is a single leaf has the one path `()`."""
    if treedef.kind == "leaf":
        return [()]
    if treedef.kind == "dict":
        keys = treedef.data
    elif treedef.kind == "namedtuple":
        keys = treedef.data._fields
    else:
        keys = range(len(treedef.children))
    return [(key, *rest) for key, child in zip(keys, treedef.children)
            for rest in tree_paths(child)]


def tree_flatten_with_path(tree: Any) -> tuple[list[tuple[tuple, Any]], TreeDef]:
    """Like `tree_flatten`, with each leaf paired with its path (see `tree_paths`):
    `([(path, leaf), ...], treedef)`. File formats name the stored arrays by these paths."""
    leaves, treedef = tree_flatten(tree)
    return list(zip(tree_paths(treedef), leaves)), treedef


def tree_leaves(tree: Any) -> list:
    """The leaves of `tree`, in flattening order."""
    return tree_flatten(tree)[0]


def tree_map(f: Callable, tree: Any, *rest: Any) -> Any:
    """Apply `f` leaf by leaf: `f(leaf, *corresponding leaves of rest)`, keeping the structure.

    Every tree in `rest` must have the structure of `tree`; otherwise a ValueError shows
    both structures.
    """
    leaves, treedef = tree_flatten(tree)
    others = []
    for position, other in enumerate(rest, start=1):
        other_leaves, other_def = tree_flatten(other)
        if other_def != treedef:
            raise ValueError(
                f"tree_map: tree {position} has structure {other_def!r}, "
                f"but the first tree has {treedef!r}"
            )
        others.append(other_leaves)
    return tree_unflatten(treedef, [f(*xs) for xs in zip(leaves, *others)])
