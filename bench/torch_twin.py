"""The PyTorch twin of a training run: the same network, parameters, loss and optimizer.

`bench/versus_pytorch.py` trains a recipe of `nets.config` with our engine and with
PyTorch CPU. This module makes the PyTorch side the same recipe, and checks that it is:

- `MAPPING` says, for every field of `nets.config.Settings`, how PyTorch matches it, and
  `SUPPORTED` which values of it are matched. `check_mapped` refuses a setting missing
  from `MAPPING` (a new field) or a value outside `SUPPORTED`: a twin that silently
  trained something else would compare nothing.
- The network is read from the shapes of our initial parameters (`nets.cnn.cnn_config`
  for the CNN), and those parameters are copied in, so both start identical.
- `forward_gap`, `gradient_gap` and `update_gap` measure how far the two sides are apart
  on the same inputs: logits, gradients, optimizer steps.

Needs PyTorch (not a dependency of the project): `pip install torch==2.13.0
--index-url https://download.pytorch.org/whl/cpu`.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autodiff import value_and_grad
from nets.cnn import POOL, cnn_config
from nets.config import Settings
from nets.costs import COSTS
from nets.errors import ConfigError
from nets.inputs import one_hot
from nets.optimizers import adam, make_optimizer, momentum

TORCH_ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


def _mse(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    targets = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
    return ((torch.sigmoid(logits) - targets) ** 2).sum() / logits.shape[0]


# nets.costs's costs on logits and integer labels: both are means over the batch.
TORCH_COSTS = {"cross-entropy": F.cross_entropy, "mse": _mse}

# Every Settings field and how the PyTorch side matches it: the one place where our
# settings meet PyTorch's. A field not named here is refused by check_mapped.
MAPPING = {
    "dataset": "the same images: one split (nets.training.split) feeds both sides",
    "model": "mlp: nn.Linear layers; cnn: blocks of Conv2d (padding k // 2) -> ReLU -> "
             "MaxPool2d(2), then Flatten (C, H, W order, as nets.cnn) and nn.Linear layers",
    "layers": "the nn.Linear sizes, read from our initial parameters",
    "channels": "the CNN's conv blocks, read from our initial parameters",
    "activation": "TORCH_ACTIVATIONS, between the MLP's layers",
    "init": "not drawn again: our initial parameters are copied in",
    "init_scale": "likewise: our initial parameters are copied in",
    "cost": "TORCH_COSTS, on the same logits and labels",
    "optimizer": "adam: torch.optim.AdamW with eps rescaled each step to our bias correction;"
                 " sgd, momentum, nesterov: torch.optim.SGD",
    "lr": "the rate our training loop uses at each step (versus_pytorch.learning_rates), "
          "set on the param groups before each step",
    "schedule": "likewise",
    "batch_size": "the same batches in the same order (0: the full training set)",
    "epochs": "the same",
    "weight_decay": "decoupled, weights only: AdamW's weight group, or a multiply by "
                    "1 - lr * weight_decay before SGD's step",
    "patience": "0 only: no early stopping",
    "shift": "the same shifted images: nets.augment.random_shift seeded by (seed, step)",
    "seed": "one seed: the same split, initial parameters, order and shifts",
    "val_size": "the same validation images, evaluated alike",
}
# The values check_mapped accepts for settings that choose behaviour (others: any value).
SUPPORTED = {
    "dataset": ("mnist", "fashion-mnist"),
    "model": ("mlp", "cnn"),
    "activation": tuple(TORCH_ACTIVATIONS),
    "cost": tuple(TORCH_COSTS),
    "optimizer": ("adam", "sgd", "momentum", "nesterov"),
    "schedule": ("constant", "step", "cosine"),
    "patience": (0,),
}


def check_mapped(settings: Settings) -> None:
    """ConfigError unless every setting is in MAPPING with a value in SUPPORTED."""
    unknown = [f.name for f in fields(settings) if f.name not in MAPPING]
    if unknown:
        raise ConfigError(f"the PyTorch side does not match the setting(s) {', '.join(unknown)}"
                          "; say how in MAPPING in bench/torch_twin.py")
    for name, values in SUPPORTED.items():
        if getattr(settings, name) not in values:
            raise ConfigError(f"the PyTorch side does not match {name} "
                              f"{getattr(settings, name)!r}; it matches "
                              f"{', '.join(map(repr, values))} (bench/torch_twin.py)")


# ------------------------------------------------------------------ the network


def _our_layers(params: Any) -> list[dict[str, np.ndarray]]:
    return list(params["conv"]) + list(params["dense"]) if isinstance(params, dict) \
        else list(params)


def _torch_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _dense(params: list[dict[str, np.ndarray]], activation: type) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i, layer in enumerate(params):
        layers.append(nn.Linear(*layer["w"].shape))
        if i < len(params) - 1:
            layers.append(activation())
    return layers


def torch_model(settings: Settings, params: Any) -> nn.Module:
    """The network `settings` and `params` describe, as an nn.Sequential on (batch,
    features) rows, with `params` copied in (and their dtype)."""
    if settings.model == "cnn":
        config = cnn_config(params)
        in_c, k = config["input_shape"][0], config["kernel_size"]
        layers: list[nn.Module] = [nn.Unflatten(1, tuple(config["input_shape"]))]
        for out_c in config["channels"]:
            # Ours pools before adding the bias and applying relu: the same values, since
            # relu is monotone and the bias is constant over a window.
            layers += [nn.Conv2d(in_c, out_c, k, padding=k // 2), nn.ReLU(), nn.MaxPool2d(POOL)]
            in_c = out_c
        layers += [nn.Flatten(), *_dense(params["dense"], nn.ReLU)]
    else:
        layers = _dense(params, TORCH_ACTIVATIONS[settings.activation])
    dtype = torch.from_numpy(np.asarray(_our_layers(params)[0]["w"])).dtype
    model = nn.Sequential(*layers).to(dtype)
    copy_params(params, model)
    return model


def _torch_weight(w: np.ndarray, module: nn.Module) -> np.ndarray:
    # Our dense weights are (fan_in, fan_out), nn.Linear's (out, in); conv weights agree.
    return w.T if isinstance(module, nn.Linear) else w


def copy_params(params: Any, model: nn.Module) -> None:
    """Copy our parameter pytree into `model`'s tensors."""
    with torch.no_grad():
        for layer, module in zip(_our_layers(params), _torch_layers(model), strict=True):
            w = np.ascontiguousarray(_torch_weight(np.asarray(layer["w"]), module))
            module.weight.copy_(torch.from_numpy(w))
            module.bias.copy_(torch.from_numpy(np.asarray(layer["b"])))


def as_our_tree(values: list[tuple[torch.Tensor, torch.Tensor]], model: nn.Module,
                like: Any) -> Any:
    """(weight, bias) tensors per layer of `model` as a pytree laid out like `like`."""
    layers = [{"w": np.ascontiguousarray(_torch_weight(w.detach().numpy(), m)),
               "b": b.detach().numpy().copy()}
              for (w, b), m in zip(values, _torch_layers(model), strict=True)]
    if isinstance(like, dict):
        return {"conv": layers[:len(like["conv"])], "dense": layers[len(like["conv"]):]}
    return layers


def params_of(model: nn.Module, like: Any) -> Any:
    """`model`'s parameters as our pytree (laid out like `like`)."""
    return as_our_tree([(m.weight, m.bias) for m in _torch_layers(model)], model, like)


# ------------------------------------------------------------------ the optimizer


def _default(function: Any, name: str) -> float:
    """A keyword default of one of our optimizers, so that PyTorch follows a change."""
    return inspect.signature(function).parameters[name].default


class TwinOptimizer:
    """Our optimizer `settings.optimizer` (nets.optimizers), done by torch.optim.

    Adam: ours folds the bias corrections into the step, lr * sqrt(1 - b2^t) / (1 - b1^t)
    * m / (sqrt(v) + eps), where PyTorch divides by sqrt(v / (1 - b2^t)) + eps; the two
    agree when PyTorch's eps is eps / sqrt(1 - b2^t), set before every step. Weight decay
    is decoupled and on weights only in both: AdamW's decay on a group of the weights;
    for SGD, the same multiply by 1 - lr * weight_decay before its step.
    """

    def __init__(self, model: nn.Module, settings: Settings) -> None:
        self.weights = [m.weight for m in _torch_layers(model)]
        biases = [m.bias for m in _torch_layers(model)]
        self.decay = settings.weight_decay
        self.steps = 0
        groups = [{"params": self.weights}, {"params": biases, "weight_decay": 0.0}]
        if settings.optimizer == "adam":
            self.beta2, self.eps = _default(adam, "beta2"), _default(adam, "eps")
            self.torch = torch.optim.AdamW(
                groups, lr=settings.lr, betas=(_default(adam, "beta1"), self.beta2),
                eps=self.eps, weight_decay=self.decay)
        else:
            beta = 0.0 if settings.optimizer == "sgd" else _default(momentum, "beta")
            self.torch = torch.optim.SGD(groups, lr=settings.lr, momentum=beta,
                                         nesterov=settings.optimizer == "nesterov")
            self.beta2 = None

    def step(self, lr: float) -> None:
        """One update with learning rate `lr`, from the gradients in the parameters."""
        self.steps += 1
        for group in self.torch.param_groups:
            group["lr"] = lr
            if self.beta2 is not None:
                group["eps"] = self.eps / math.sqrt(1 - self.beta2 ** self.steps)
        if self.beta2 is None and self.decay:
            with torch.no_grad():
                torch._foreach_mul_(self.weights, 1 - lr * self.decay)
        self.torch.step()


# ------------------------------------------------------------------ equivalence


def _gap(ours: np.ndarray, theirs: np.ndarray) -> float:
    """Largest difference, relative to the largest magnitude (at least 1)."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    return float(np.max(np.abs(ours - theirs)) / max(1.0, float(np.max(np.abs(ours)))))


def tree_gap(ours: Any, theirs: Any) -> float:
    """The largest `_gap` over the layers of two pytrees laid out alike."""
    return max(_gap(a[k], b[k]) for a, b in zip(_our_layers(ours), _our_layers(theirs),
                                                 strict=True) for k in ("w", "b"))


def forward_gap(apply: Any, params: Any, model: nn.Module, x: np.ndarray) -> float:
    """How far PyTorch's logits are from ours on inputs x (relative, see _gap)."""
    with torch.no_grad():
        theirs = model(torch.from_numpy(x)).numpy()
    return _gap(apply(params, x), theirs)


def gradient_gap(settings: Settings, apply: Any, params: Any, model: nn.Module,
                 x: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """How far the cost and its gradients are apart on one batch (relative, see _gap)."""
    cost = COSTS[settings.cost]
    targets = one_hot(labels, num_classes, x.dtype)
    loss, grads = value_and_grad(lambda p: cost(apply(p, x), targets))(params)
    model.zero_grad(set_to_none=True)
    theirs = TORCH_COSTS[settings.cost](model(torch.from_numpy(x)), torch.from_numpy(labels))
    theirs.backward()
    torch_grads = as_our_tree([(m.weight.grad, m.bias.grad) for m in _torch_layers(model)],
                              model, params)
    return max(_gap(loss, theirs.item()), tree_gap(grads, torch_grads))


def update_gap(settings: Settings, params: Any, grads: list[Any], lrs: list[float]) -> float:
    """How far the parameters are apart after our optimizer and the twin's take one step
    per entry of `grads` (pytrees like `params`) at the learning rates `lrs`."""
    ours = make_optimizer(settings.optimizer, settings.weight_decay)
    state, mine = ours.init(params), params
    model = torch_model(settings, params)
    twin = TwinOptimizer(model, settings)
    for g, lr in zip(grads, lrs, strict=True):
        mine, state = ours.update(mine, g, state, lr)
        for layer, module in zip(_our_layers(g), _torch_layers(model), strict=True):
            module.weight.grad = torch.from_numpy(
                np.ascontiguousarray(_torch_weight(layer["w"], module)))
            module.bias.grad = torch.from_numpy(layer["b"])
        twin.step(lr)
    return tree_gap(mine, params_of(model, params))
