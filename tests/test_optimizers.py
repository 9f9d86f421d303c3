"""nets.optimizers: steps, state, weight decay, schedules."""

import numpy as np
import pytest

import autodiff.numpy as anp
from autodiff import grad
from nets.errors import ConfigError
from nets.optimizers import adam, learning_rate, make_optimizer, momentum, sgd

rng = np.random.default_rng(0)



def _quadratic_descent(opt, lr, steps=300):
    target = np.array([3.0, -2.0])
    params = {"w": np.zeros(2)}
    loss = grad(lambda p: anp.sum((p["w"] - target) ** 2))
    state = opt.init(params)
    for _ in range(steps):
        params, state = opt.update(params, loss(params), state, lr)
    return params["w"], state


@pytest.mark.parametrize("name,lr", [("sgd", 0.1), ("momentum", 0.05), ("nesterov", 0.05),
                                     ("adam", 0.1)])
def test_optimizers_find_the_minimum(name, lr):
    w, state = _quadratic_descent(make_optimizer(name), lr)
    np.testing.assert_allclose(w, [3.0, -2.0], atol=1e-3)
    assert int(state["step"]) == 300


def test_sgd_step_is_exact():
    params = {"w": np.array([1.0, 2.0])}
    new, _ = sgd().update(params, {"w": np.array([0.5, -1.0])}, sgd().init(params), 0.1)
    np.testing.assert_allclose(new["w"], [0.95, 2.1])
    np.testing.assert_array_equal(params["w"], [1.0, 2.0])  # inputs untouched


def test_adam_first_step_is_lr_times_sign():
    # With bias correction, Adam's first step is lr * g / (|g| + eps), about lr * sign(g).
    params = [{"w": np.array([1.0, 1.0]), "b": np.array([0.0])}]
    grads = [{"w": np.array([0.3, -4.0]), "b": np.array([2.0])}]
    opt = adam()
    new, _ = opt.update(params, grads, opt.init(params), 0.01)
    np.testing.assert_allclose(new[0]["w"], [0.99, 1.01], rtol=1e-6)
    np.testing.assert_allclose(new[0]["b"], [-0.01], rtol=1e-6)


def _textbook_adam(p, g, m, v, lr, step, beta1=0.9, beta2=0.999, eps=1e-8):
    # Kingma and Ba's efficient form (end of their section 2): the bias corrections go
    # into the step size, and eps is added to sqrt(v).
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    step_size = lr * np.sqrt(1 - beta2 ** step) / (1 - beta1 ** step)
    return p - step_size * m / (np.sqrt(v) + eps), m, v


def test_adam_follows_kingma_and_ba_for_leaves_of_any_shape():
    """Three steps on a matrix, a scalar, an empty leaf and a float32 vector: the textbook
    formulas, each leaf keeping its shape and dtype (a 0-d leaf stays an array)."""
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((30, 70)), "s": np.array(0.5), "e": np.zeros((0, 3)),
              "b": rng.standard_normal(7).astype(np.float32)}
    opt = adam()
    p, state = params, opt.init(params)
    for _ in range(3):
        grads = {k: (np.cos(v) * 0.1).astype(v.dtype) for k, v in p.items()}
        p, state = opt.update(p, grads, state, 0.01)
    ref, m, v = dict(params), {k: 0.0 for k in params}, {k: 0.0 for k in params}
    for step in (1, 2, 3):
        for k in params:
            g = (np.cos(ref[k]) * 0.1).astype(params[k].dtype)
            ref[k], m[k], v[k] = _textbook_adam(ref[k], g, m[k], v[k], 0.01, step)
    for k in params:
        for tree in (p, state["m"], state["v"]):
            assert type(tree[k]) is np.ndarray and tree[k].dtype == params[k].dtype
            assert tree[k].shape == params[k].shape
        rtol = 1e-5 if params[k].dtype == np.float32 else 1e-10
        np.testing.assert_allclose(p[k], ref[k], rtol=rtol, atol=1e-12)
        np.testing.assert_allclose(state["m"][k], m[k], rtol=rtol, atol=1e-12)
        np.testing.assert_allclose(state["v"][k], v[k], rtol=rtol, atol=1e-12)


def test_momentum_accumulates_velocity():
    params = {"w": np.array([0.0])}
    opt = momentum(beta=0.5)
    state = opt.init(params)
    g = {"w": np.array([1.0])}
    params, state = opt.update(params, g, state, 1.0)
    params, state = opt.update(params, g, state, 1.0)
    np.testing.assert_allclose(params["w"], [-(1.0 + 1.5)])


def test_weight_decay_shrinks_weights_not_biases():
    params = [{"w": np.array([1.0]), "b": np.array([1.0])}]
    zero = [{"w": np.array([0.0]), "b": np.array([0.0])}]
    opt = make_optimizer("sgd", weight_decay=0.5)
    new, _ = opt.update(params, zero, opt.init(params), 0.1)
    np.testing.assert_allclose(new[0]["w"], [0.95])
    np.testing.assert_allclose(new[0]["b"], [1.0])


def test_unknown_optimizer_and_negative_decay():
    with pytest.raises(ConfigError, match="unknown optimizer"):
        make_optimizer("rmsprop")
    with pytest.raises(ConfigError, match="weight decay"):
        make_optimizer("adam", weight_decay=-1)


def test_schedules():
    assert learning_rate("constant", 0.1, 5, 10) == 0.1
    assert [learning_rate("step", 1.0, e, 9) for e in (0, 2, 3, 6, 8)] == \
        pytest.approx([1.0, 1.0, 0.1, 0.01, 0.01])
    cosine = [learning_rate("cosine", 1.0, e, 4) for e in range(4)]
    assert cosine[0] == 1.0 and cosine == sorted(cosine, reverse=True) and cosine[-1] > 0
    with pytest.raises(ConfigError, match="schedule"):
        learning_rate("linear", 0.1, 0, 1)
