"""The tape view: print_tape's lines and to_dot's graph match what the trace records."""

import re

import numpy as np

import autodiff.numpy as anp
from autodiff import print_tape, to_dot
from autodiff.show import tape_lines


def loss(w, x):
    return anp.sum(anp.tanh(x @ w) ** 2)


def test_print_tape_lists_each_op_with_its_operands_shape_and_dtype(capsys):
    print_tape(loss, np.ones((3, 2)), np.ones((4, 3), dtype=np.float32))
    assert capsys.readouterr().out.splitlines() == [
        "t0 = input w         float64 (3, 2)",
        "t1 = input x         float32 (4, 3)",
        "t2 = matmul(t1, t0)  float64 (4, 2)",
        "t3 = tanh(t2)        float64 (4, 2)",
        "t4 = power(t3, 2)    float64 (4, 2)",
        "t5 = sum(t4)         float64 ()",
    ]


def test_pytree_inputs_are_named_by_path_and_settings_and_constants_shown():
    def f(params, x):
        return anp.sum(x @ params[0]["w"] * np.ones(2), axis=0)

    lines = tape_lines(f, [{"w": np.ones((3, 2))}], np.ones((4, 3)))
    assert lines[0].startswith("t0 = input params[0]['w'] ")
    assert re.match(r"t3 = multiply\(t2, const float64 \(2,\)\) +float64 \(4, 2\)", lines[3])
    assert re.match(r"t4 = sum\(t3, axis=0\) +float64 \(2,\)", lines[4])


def test_an_input_used_twice_has_two_edges_and_an_unused_one_none():
    dot = to_dot(lambda a, b: a * a, np.ones(2), np.ones(2))
    assert dot.startswith("digraph tape {") and dot.rstrip().endswith("}")
    assert dot.count("t0 -> t2;") == 2
    assert "t1 ->" not in dot
    assert 't2 [label="t2: multiply\\nfloat64 (2,)", shape=ellipse];' in dot


def test_the_tape_view_leaves_gradients_alone():
    from autodiff import grad

    w, x = np.ones((3, 2)), np.arange(12.0).reshape(4, 3) / 10
    before = grad(loss)(w, x)
    print_tape(loss, w, x)
    np.testing.assert_array_equal(grad(loss)(w, x), before)
