"""A small reverse-mode automatic differentiation engine over NumPy.

    import autodiff.numpy as anp
    from autodiff import grad

    def loss(w, x):
        return anp.sum(anp.tanh(x @ w) ** 2)

    grad(loss)(w, x)  # has the shape and dtype of w

Functions are plain NumPy code written with `autodiff.numpy`; `grad`, `value_and_grad`,
`vjp`, `jvp`, `hvp`, `jacobian`, `hessian` and `checkpoint` transform them. Arguments may
be pytrees (dicts, lists, tuples, namedtuples of arrays). New differentiable ops are made
with `primitive` and given rules with `defvjp`.
"""

from autodiff.check import check_grads
from autodiff.core import Box, defvjp, defvjp_argnum, nondifferentiable, primitive
from autodiff.forward import hvp, jvp
from autodiff.remat import checkpoint
from autodiff.show import print_tape, to_dot  # noqa: F401  (the tape, for learners)
from autodiff.transforms import grad, hessian, jacobian, value_and_grad, vjp
from autodiff.tree import tree_flatten, tree_leaves, tree_map, tree_unflatten

__all__ = [
    "Box", "check_grads", "checkpoint", "defvjp", "defvjp_argnum", "grad", "hessian", "hvp",
    "jacobian", "jvp", "nondifferentiable", "primitive", "tree_flatten", "tree_leaves",
    "tree_map", "tree_unflatten", "value_and_grad", "vjp",
]
