"""The optimizer zoo of the seed review, as ``torch.optim.Optimizer`` subclasses.

First-order and adaptive (seed sections 3.1, 3.3, 3.4): ``sgd``, ``momentum``, ``nesterov``,
``rmsprop``, ``adagrad``, ``adam``, ``adamw``, ``lion``. Second-order and quasi-Newton (section 3.2),
driven by ``step(closure)``: ``newton``, ``bfgs``, ``lbfgs``, ``lm``.

    >>> import torch
    >>> from raytune_opt import optim
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    >>> opt = optim.create("adamw", model, lr=1e-3, weight_decay=0.05)   # biases not decayed
    >>> [group["weight_decay"] for group in opt.param_groups]
    [0.05, 0.0]
    >>> optim.available()["lion"].hparams["lr"]                          # default and search range
    HParam(name='lr', default=0.0001, low=1e-05, high=0.00333..., log=True, choices=None, doc=...)
    >>> model(torch.randn(2, 4)).sum().backward(); opt.step()
    >>> optim.state_bytes(opt).per_param                                 # AdamW: m and v, 4 bytes each
    8.0
"""

from raytune_opt.optim.adagrad import Adagrad
from raytune_opt.optim.adam import Adam, AdamW
from raytune_opt.optim.bfgs import BFGS
from raytune_opt.optim.lbfgs import LBFGS
from raytune_opt.optim.lion import Lion
from raytune_opt.optim.lm import LM
from raytune_opt.optim.memory import StateBytes, state_bytes
from raytune_opt.optim.newton import Newton
from raytune_opt.optim.registry import HParam, OptimizerSpec, available, create, param_groups, register, spec
from raytune_opt.optim.rmsprop import RMSProp
from raytune_opt.optim.sgd import SGD, Momentum, Nesterov

__all__ = [
    "HParam",
    "OptimizerSpec",
    "available",
    "create",
    "param_groups",
    "register",
    "spec",
    "StateBytes",
    "state_bytes",
    "SGD",
    "Momentum",
    "Nesterov",
    "RMSProp",
    "Adagrad",
    "Adam",
    "AdamW",
    "Lion",
    "Newton",
    "BFGS",
    "LBFGS",
    "LM",
]
