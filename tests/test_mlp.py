"""nets.mlp: initialisation, shapes, gradients, float32 end to end."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from autodiff import check_grads, tree_leaves, value_and_grad
from nets.costs import COSTS, cross_entropy, mse
from nets.mlp import init_mlp, layer_sizes, mlp
from nets.optimizers import OPTIMIZERS, make_optimizer

rng = np.random.default_rng(0)



@given(sizes=st.lists(st.integers(1, 6), min_size=2, max_size=5))
def test_init_mlp_any_layer_sizes(sizes):
    params = init_mlp(np.random.default_rng(1), sizes)
    assert layer_sizes(params) == sizes
    for layer in params:
        assert layer["w"].dtype == np.float32 and not layer["b"].any()
    assert mlp(params, np.ones((3, sizes[0]), np.float32)).shape == (3, sizes[-1])


def test_init_scales():
    big = [784, 1000, 10]
    he = init_mlp(np.random.default_rng(0), big, "he")[0]["w"]
    xavier = init_mlp(np.random.default_rng(0), big, "xavier")[0]["w"]
    normal = init_mlp(np.random.default_rng(0), big, "normal", scale=0.01)[0]["w"]
    np.testing.assert_allclose(he.std(), np.sqrt(2 / 784), rtol=0.02)
    np.testing.assert_allclose(xavier.std(), np.sqrt(2 / 1784), rtol=0.02)
    np.testing.assert_allclose(normal.std(), 0.01, rtol=0.02)


def test_mlp_gradients_in_float64():
    params = init_mlp(rng, [5, 4, 3], dtype=np.float64)
    x = rng.standard_normal((6, 5))
    targets = np.eye(3)[rng.integers(0, 3, 6)]
    for activation in ("tanh", "sigmoid"):
        check_grads(lambda p, a=activation: cross_entropy(mlp(p, x, a), targets), (params,))
    check_grads(lambda p: mse(mlp(p, x, "tanh"), targets), (params,))


def test_mlp_training_stays_float32():
    params = init_mlp(rng, [8, 6, 3])
    x = rng.standard_normal((5, 8)).astype(np.float32)
    targets = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 5)]
    for cost in COSTS.values():
        loss, g = value_and_grad(lambda p, c=cost: c(mlp(p, x), targets))(params)
        assert loss.dtype == np.float32
        assert all(leaf.dtype == np.float32 for leaf in tree_leaves(g))
        for name in OPTIMIZERS:
            opt = make_optimizer(name, weight_decay=1e-4)
            new, state = opt.update(params, g, opt.init(params), 1e-2)
            assert all(leaf.dtype == np.float32 for leaf in tree_leaves(new)), name
