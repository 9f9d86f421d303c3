"""digits.treejson: tree structures as JSON, and the refusal of malformed nodes."""

import collections

import numpy as np
import pytest

from digits.treejson import decode_tree, encode_tree
from nets.errors import CheckpointError

Pair = collections.namedtuple("Pair", "first second")


def round_trip(tree):
    arrays: dict = {}
    node = encode_tree(tree, arrays, "t.npz")
    return node, arrays, decode_tree(node, arrays, set(), "t.npz")


def test_names_follow_paths_and_types_come_back():
    tree = {"a/b": [np.ones(2), 3], "p": Pair(True, None), "": 1.5}
    node, arrays, back = round_trip(tree)
    assert sorted(arrays) == ["%", "a%2Fb/0", "a%2Fb/1", "p/first"]
    assert type(back["p"]) is Pair and back["p"].first is True and back["p"].second is None
    assert type(back["a/b"][1]) is int and back[""] == 1.5
    assert node["dict"]["p"]["namedtuple"]["fields"][0][0] == "first"


def test_an_unknown_namedtuple_class_becomes_one_with_the_same_fields():
    node, arrays, _ = round_trip(Pair(np.zeros(1), np.ones(1)))
    node["namedtuple"]["module"] = "not_imported_anywhere"
    back = decode_tree(node, arrays, set(), "t.npz")
    assert back._fields == ("first", "second") and type(back).__name__ == "Pair"


@pytest.mark.parametrize("node", [
    {"set": []}, {"dict": []}, {"array": "missing"}, {"namedtuple": {"fields": 3}},
    {"namedtuple": {"module": "m", "name": "N", "fields": [["class", None]]}},
])
def test_malformed_nodes_are_refused(node):
    with pytest.raises(CheckpointError, match="t.npz"):
        decode_tree(node, {}, set(), "t.npz")
