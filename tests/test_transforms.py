"""jvp, hvp, vjp with has_aux and checkpoint: against central differences and against JAX
(float64, pytree arguments), and checkpoint's promise: the same gradients, a shorter tape."""

import tracemalloc

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import autodiff.numpy as anp
from autodiff import checkpoint, grad, hessian, hvp, jvp, tree_leaves, tree_map, value_and_grad, vjp
from autodiff.core import Box, Trace

jax.config.update("jax_enable_x64", True)

EPS = 1e-6


def _params(seed=0):
    rng = np.random.default_rng(seed)
    params = {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    return params, rng.standard_normal((5, 3))


def _model(m):
    """A function of a pytree and an array, written once for anp and once for jnp."""
    def model(params, x):
        h = m.tanh(x @ params["w"] + params["b"])
        return {"h": h, "energy": m.sum(m.sin(h) * h) + m.sum(params["w"] ** 2)}
    return model


def _loss(m):
    model = _model(m)

    def loss(params, x):
        out = model(params, x)
        return out["energy"] + m.sum(out["h"] ** 3) + m.sum(x * x * params["b"][:3])
    return loss


def _random_like(tree, seed):
    rng = np.random.default_rng(seed)
    return tree_map(lambda leaf: rng.standard_normal(np.shape(leaf)), tree)


def _central(fun, primals, tangents):
    """(fun(primals + eps t) - fun(primals - eps t)) / (2 eps), leaf by leaf."""
    def moved(sign):
        return fun(*tree_map(lambda p, t: p + sign * EPS * t, primals, tangents))
    return tree_map(lambda a, b: (a - b) / (2 * EPS), moved(1), moved(-1))


def _assert_trees_close(actual, expected, rtol=1e-10, atol=1e-12):
    actual_leaves, expected_leaves = tree_leaves(actual), tree_leaves(expected)
    assert len(actual_leaves) == len(expected_leaves)
    for a, e in zip(actual_leaves, expected_leaves):
        assert not isinstance(a, Box)
        np.testing.assert_allclose(a, np.asarray(e), rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- jvp


def test_jvp_against_jax_and_central_differences():
    params, x = _params()
    primals = (params, x)
    tangents = _random_like(primals, 1)
    out, tangent_out = jvp(_model(anp), primals, tangents)
    jax_out, jax_tangent = jax.jvp(_model(jnp), primals, tangents)
    _assert_trees_close(out, jax_out)
    _assert_trees_close(tangent_out, jax_tangent)
    _assert_trees_close(tangent_out, _central(_model(np), primals, tangents), rtol=1e-6, atol=1e-8)


def test_jvp_of_a_constant_output_and_an_unused_argument():
    x, y = np.array([1.0, 2.0]), np.array([3.0])
    out, tangent = jvp(lambda x, y: anp.sin(x), (x, y), (np.ones(2), np.ones(1)))
    np.testing.assert_allclose(tangent, np.cos(x))
    out, tangent = jvp(lambda x: np.ones(3), (x,), (np.ones(2),))
    np.testing.assert_array_equal(tangent, np.zeros(3))


def test_jvp_nests_inside_grad():
    def directional(m, jvp_fn):
        def f(x):
            return m.sum(m.sin(x) * x ** 2)
        v = np.array([0.3, -1.0, 2.0])
        return lambda x: jvp_fn(f, (x,), (v,))[1]

    x = np.array([0.5, 1.5, -0.7])
    ours = grad(directional(anp, jvp))(x)
    theirs = jax.grad(directional(jnp, jax.jvp))(x)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_jvp_refuses_tangents_that_do_not_match():
    with pytest.raises(ValueError, match="structure"):
        jvp(anp.sin, (np.ones(2),), (np.ones(2), np.ones(2)))
    with pytest.raises(ValueError, match="shape"):
        jvp(anp.sin, (np.ones(2),), (np.ones(3),))


# --------------------------------------------------------------------------- hvp


def test_hvp_against_jax_and_central_differences():
    params, x = _params(2)
    primals = (params, x)
    tangents = _random_like(primals, 3)
    ours = hvp(_loss(anp), primals, tangents)
    theirs = jax.jvp(jax.grad(_loss(jnp)), primals, tangents)[1]
    _assert_trees_close(ours, theirs)
    numeric = _central(lambda *p: grad(_loss(anp))(*p), primals, tangents)
    _assert_trees_close(ours, numeric, rtol=1e-6, atol=1e-8)


def test_hvp_equals_the_hessian_times_the_vector():
    def f(x):
        return anp.sum(anp.exp(anp.sin(x) * x[::-1]))

    x, v = np.array([0.3, -0.2, 1.1, 0.4]), np.array([1.0, 0.5, -2.0, 0.1])
    np.testing.assert_allclose(hvp(f, (x,), (v,)), hessian(f)(x) @ v, rtol=1e-12)


# ------------------------------------------------------------------ vjp with aux


def test_vjp_with_aux_against_jax():
    def with_aux(m):
        model = _model(m)

        def f(params, x):
            out = model(params, x)
            return out["h"] * 2.0, {"energy": out["energy"], "count": 3}
        return f

    params, x = _params(4)
    out, vjp_fn, aux = vjp(with_aux(anp), params, x, has_aux=True)
    jax_out, jax_vjp_fn, jax_aux = jax.vjp(with_aux(jnp), params, x, has_aux=True)
    cotangent = np.random.default_rng(5).standard_normal(np.shape(out))
    _assert_trees_close(out, jax_out)
    _assert_trees_close(aux, jax_aux)
    _assert_trees_close(vjp_fn(cotangent), jax_vjp_fn(cotangent))


def test_vjp_with_aux_needs_a_pair():
    with pytest.raises(TypeError, match="pair"):
        vjp(lambda x: anp.sin(x), np.ones(2), has_aux=True)


# -------------------------------------------------------------------- checkpoint


def _mlp(m, depth):
    def layer(w, h):
        return m.tanh(h @ w) + 0.5 * h

    def network(weights, x, wrap):
        h = x
        for w in weights:
            h = wrap(layer)(w, h)
        return m.sum(h ** 2)
    return network


def _weights(depth=6, width=5, seed=6):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((width, width)) / np.sqrt(width) for _ in range(depth)]


def test_checkpoint_gives_identical_gradients_to_every_order():
    weights, x = _weights(), np.random.default_rng(7).standard_normal((3, 5))
    net = _mlp(anp, 6)

    def plain(weights):
        return net(weights, x, lambda f: f)

    def remat(weights):
        return net(weights, x, checkpoint)

    assert plain(weights) == remat(weights)
    for a, b in zip(grad(plain)(weights), grad(remat)(weights)):
        np.testing.assert_array_equal(a, b)
    v = _random_like(weights, 8)
    for a, b in zip(hvp(plain, (weights,), (v,)), hvp(remat, (weights,), (v,))):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
    third = [grad(lambda w, f=f: anp.sum(hvp(f, (w,), (v,))[0] ** 2))(weights)
             for f in (plain, remat)]
    for a, b in zip(*third):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def test_checkpoint_against_jax_with_pytree_arguments_and_results():
    def block(m, wrap):
        def f(params, x):
            h = m.tanh(x @ params["w"] + params["b"])
            return {"h": h, "s": m.sum(h)}

        def loss(params, x):
            out = wrap(f)(params, x)
            return m.sum(out["h"] ** 2) * out["s"]
        return loss

    params, x = _params(9)
    ours = value_and_grad(block(anp, checkpoint), argnums=(0, 1))(params, x)
    theirs = jax.value_and_grad(block(jnp, jax.checkpoint), argnums=(0, 1))(params, x)
    _assert_trees_close(ours, theirs)
    ours = hessian(lambda b: block(anp, checkpoint)(dict(params, b=b), x))(params["b"])
    theirs = jax.hessian(lambda b: block(jnp, jax.checkpoint)(dict(params, b=b), x))(params["b"])
    _assert_trees_close(ours, theirs)


def test_checkpoint_keeps_only_its_results_on_the_tape():
    weights, x = _weights(depth=8), np.random.default_rng(10).standard_normal((4, 5))
    net = _mlp(anp, 8)

    def tape_length(wrap):
        trace = Trace()
        boxes = [trace.new_input(w) for w in weights]
        net(boxes, x, wrap)
        return len(trace.tape)

    plain, remat = tape_length(lambda f: f), tape_length(checkpoint)
    # each layer: matmul, tanh, multiply, add when plain (the first one's 0.5 * x is a
    # constant); one entry when checkpointed; then ** 2 and sum
    assert plain - len(weights) == 4 * 8 - 1 + 2
    assert remat - len(weights) == 8 + 2


def test_checkpoint_lowers_the_peak_memory_of_a_deep_mlp():
    rng = np.random.default_rng(11)
    weights = [rng.standard_normal((32, 32)) / 6 for _ in range(32)]
    x = rng.standard_normal((512, 32))  # one activation: 128 KiB, 16 times a weight

    def layers(weights, h):
        for w in weights:
            h = h + anp.tanh(h @ w)
        return h

    def loss(weights, segment):
        if not segment:
            return anp.mean(layers(weights, x) ** 2)
        h = x
        for start in range(0, len(weights), segment):
            h = checkpoint(layers)(weights[start:start + segment], h)
        return anp.mean(h ** 2)

    def peak(segment):
        tracemalloc.start()
        value, grads = value_and_grad(loss)(weights, segment)
        result = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return result, value, grads

    plain, remat = peak(0), peak(4)
    assert remat[1] == plain[1]
    for a, b in zip(plain[2], remat[2]):
        np.testing.assert_array_equal(a, b)
    # plain keeps 3 activations per layer (96); checkpointed, the 8 segment boundaries
    # and, while it is recomputed, one segment's 12
    assert remat[0] < 0.4 * plain[0], (remat[0], plain[0])


def test_checkpoint_without_traced_arguments_just_calls():
    assert checkpoint(lambda x: x * 2)(np.float64(3.0)) == 6.0


def test_checkpoint_refuses_a_closed_over_traced_value():
    def f(w):
        return anp.sum(checkpoint(lambda x: x * w)(anp.sin(w)))

    with pytest.raises(TypeError, match="closes over"):
        grad(f)(np.ones(2))
    # with no traced argument nothing is checkpointed: the closure is differentiated as usual
    np.testing.assert_array_equal(
        grad(lambda w: anp.sum(checkpoint(lambda x: x * w)(np.full(2, 3.0))))(np.ones(2)), [3, 3])


def test_complex_tangents_are_refused_by_name():
    x = np.array([1.0, 2.0])
    with pytest.raises(TypeError, match="jvp: a tangent has dtype complex128"):
        jvp(lambda x: x * 2, (x,), (x * 1j,))
    with pytest.raises(TypeError, match="hvp: a tangent has dtype complex128"):
        hvp(lambda x: anp.sum(x ** 3), (x,), (x * 1j,))
