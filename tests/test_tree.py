"""autodiff.tree paths: every leaf's path from the root, in flattening order."""

from collections import namedtuple

import pytest

from autodiff import tree_flatten
from autodiff.tree import tree_flatten_with_path, tree_paths, tree_unflatten

Point = namedtuple("Point", "x y")


def test_paths_name_dict_keys_indices_and_fields_in_leaf_order():
    tree = {"b": [1, (2, None)], "a": Point(3, {"z": 4})}
    pairs, treedef = tree_flatten_with_path(tree)
    assert pairs == [(("a", "x"), 3), (("a", "y", "z"), 4), (("b", 0), 1), (("b", 1, 0), 2)]
    leaves, same = tree_flatten(tree)
    assert same == treedef and [leaf for _, leaf in pairs] == leaves
    assert tree_paths(treedef) == [path for path, _ in pairs]


def test_a_single_leaf_has_the_empty_path_and_empty_containers_none():
    assert tree_flatten_with_path(5)[0] == [((), 5)]
    assert tree_flatten_with_path({"a": [], "b": None})[0] == []


def test_unflatten_refuses_too_few_or_too_many_leaves():
    leaves, treedef = tree_flatten([{"w": 1, "b": 2}, (3,)])
    assert tree_unflatten(treedef, leaves) == [{"w": 1, "b": 2}, (3,)]
    for wrong in (leaves[:2], leaves + [4], []):
        with pytest.raises(ValueError, match=f"has 3 leaves, but {len(wrong)} were given"):
            tree_unflatten(treedef, wrong)
