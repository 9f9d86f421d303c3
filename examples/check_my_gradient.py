"""Check a gradient: `check_grads` compares reverse mode with central differences.

First on a function of your own written with `autodiff.numpy` (it passes), then on a new
primitive whose hand-written VJP rule has a deliberate mistake (it is caught).

    python examples/check_my_gradient.py
"""
import numpy as np

import autodiff.numpy as anp
from autodiff import check_grads, defvjp, grad, primitive


def softplus_loss(w, x):
    """A function of your own: mean softplus of a linear map, log(1 + e^(x @ w))."""
    return anp.mean(anp.log(1 + anp.exp(x @ w)))


rng = np.random.default_rng(0)
w, x = rng.standard_normal(3), rng.standard_normal((5, 3))  # float64: differences need it
check_grads(softplus_loss, (w, x), order=2)  # first and second derivatives
print("softplus_loss: reverse mode agrees with central differences (orders 1 and 2)")
print("gradient with respect to w:", np.round(grad(softplus_loss)(w, x), 4))

cube = primitive(lambda x: x ** 3)
defvjp(cube, lambda g, ans, x: g * 3 * x)  # wrong on purpose: d(x^3)/dx is 3 x^2
try:
    check_grads(lambda x: anp.sum(cube(x)), (rng.standard_normal(4),))
except AssertionError as error:
    print("cube with a wrong rule, caught:", error)
defvjp(cube, lambda g, ans, x: g * 3 * x ** 2)  # the right rule
check_grads(lambda x: anp.sum(cube(x)), (rng.standard_normal(4),))
print("cube with the right rule: reverse mode agrees with central differences")
