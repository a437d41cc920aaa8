"""The machinery shared by the first-order optimizers: one ``torch.optim.Optimizer`` base class.

Each first-order optimizer (``sgd.py`` … ``lion.py``) writes its update rule once, as a function over
lists of tensors built from ``torch._foreach_*`` ops (the multi-tensor path), and may name a native
fused torch kernel that computes the same equation. :class:`FirstOrderOptimizer` does the rest:

- validates hyperparameters when a parameter group is added (a ``ConfigError`` names the optimizer,
  the field, the value and what is allowed);
- creates per-parameter state (zero buffers and a float32 ``step`` counter, as torch.optim does), so
  ``state_dict()`` / ``load_state_dict()`` round-trip bit-exactly;
- groups the parameters that have a gradient by (device, dtype) and hands each bucket to one of three
  execution paths chosen by the group's ``fused`` flag:

  ``fused=None`` (default)  the native fused kernel where torch has one that computes this optimizer's
                            equation for the bucket's device and dtype; else, on the CPU, the optimizer's
                            single-pass numba kernel (``_kernels``, Lion and RMSProp) for float32 /
                            float64 buckets whose contiguous tensors hold ≥ :data:`KERNEL_MIN_TOTAL`
                            elements, and the foreach path cache-blocked (:func:`run_chunked`) for
                            the rest; on other devices the foreach path;
  ``fused=True``            the native fused kernel, else the single-pass CPU kernel for every float32 /
                            float64 tensor, else the foreach function compiled by ``torch.compile`` into
                            one single-pass loop (compiled lazily, cached: CUDA, half precision);
  ``fused=False``           the foreach path over whole tensors.

Cache blocking: a foreach rule of k ops makes k passes over memory, and its out-of-place ops allocate
tensors as large as the parameters (fresh pages the kernel must fault in and zero). Applied to slices of
:data:`CHUNK_NUMEL` elements (small tensors grouped up to that size) the intermediate passes stay in the
L2/L3 cache and the temporaries are small, reused allocations, so a step moves little more memory than a
single-pass kernel — with the same ops on the same values, hence bit-identical results.

Gradient conventions shared by all (g is what the update rule sees):
``maximize`` uses g = −∇J; coupled weight decay λ adds λ a to g (L2 regularisation). AdamW and Lion
decouple it instead (a ← a − η λ a, outside the adaptive step).
"""

from __future__ import annotations

import functools
import os
import threading
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from raytune_opt.errors import ConfigError, ConfigTypeError
from raytune_opt.optim._checks import check_choice, check_nonneg

__all__ = [
    "Bucket",
    "FirstOrderOptimizer",
    "compiled",
    "effective_grads",
    "run_chunked",
    "run_compiled",
    "run_kernel",
    "scalar",
]


@dataclass
class Bucket:
    """The parameters of one group that share a device and dtype, with their grads and state lists."""

    device: torch.device
    dtype: torch.dtype
    params: list[Tensor] = field(default_factory=list)
    grads: list[Tensor] = field(default_factory=list)
    steps: list[Tensor] = field(default_factory=list)
    buffers: dict[str, list[Tensor]] = field(default_factory=dict)


def effective_grads(
    params: list[Tensor], grads: list[Tensor], weight_decay: float, maximize: bool
) -> list[Tensor]:
    """g = (−∇J if maximize else ∇J) + λ a: the gradient the update rule sees (coupled L2 decay).

    Returns ``grads`` itself when neither applies (no copy); never modifies ``grads`` in place.
    """
    if maximize:
        grads = torch._foreach_neg(grads)
    if weight_decay != 0:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    return grads


@functools.cache
def compiled(fn: Callable[..., None]) -> Callable[..., None]:
    """``fn`` compiled by ``torch.compile`` (inductor, dynamic shapes), built lazily on its first call."""
    return torch.compile(fn, fullgraph=True, dynamic=True)


def scalar(x: float | Tensor) -> float:
    """A hyperparameter as a Python float (a 1-element tensor lr is read once)."""
    return float(x.item()) if isinstance(x, Tensor) else float(x)


class FirstOrderOptimizer(torch.optim.Optimizer):
    """Base class of the first-order optimizers; subclasses set the class attributes and ``_foreach``.

    Class attributes:
      name        registry name, used in error messages;
      counts_steps  keep a float32 ``step`` counter per parameter (as torch.optim does) when the
                  equation needs t (Adam's bias correction) or torch's fused kernel reads it;
      state_keys  per-parameter buffers (same shape and dtype as the parameter), created at the first
                  step that needs them with :meth:`_init_fill` (0 unless overridden);
      compiled_tensors  the rule's scalars that the compiled path passes as 0-d tensors (those a
                  schedule changes: lr, betas, momentum), which the rule must accept as such;
      cpu_kernel  the name of a single-pass CPU kernel in ``optim._kernels`` with the rule's signature
                  (for rules torch has no fused kernel for), or ``None``;
    and ``_buffer_keys(group)`` when a buffer is needed only for some hyperparameters.
    """

    name: ClassVar[str] = ""
    state_keys: ClassVar[tuple[str, ...]] = ()
    counts_steps: ClassVar[bool] = False
    compiled_tensors: ClassVar[tuple[str, ...]] = ()
    cpu_kernel: ClassVar[str | None] = None

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        if isinstance(params, Tensor):
            raise ConfigTypeError(
                f"{self.name}: params = Tensor is not allowed: "
                "expected an iterable of tensors or parameter-group dicts"
            )
        params = list(params) if isinstance(params, Iterable) else params
        if not params:
            raise ConfigError.invalid(f"{self.name}.params", [], "a non-empty iterable of tensors")
        super().__init__(params, defaults)

    @property
    def _hyper_keys(self) -> tuple[str, ...]:
        """This optimizer's hyperparameter names (torch adds ``differentiable`` to ``defaults`` on load)."""
        return tuple(k for k in self.defaults if k != "differentiable")

    # -- validation -----------------------------------------------------------------------------

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (torch semantics) and validate its hyperparameters and parameters."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        check_nonneg(self.name, "lr", group["lr"])
        if "weight_decay" in group:
            check_nonneg(self.name, "weight_decay", group["weight_decay"])
        check_choice(self.name, "maximize", group["maximize"], (False, True))
        check_choice(self.name, "fused", group["fused"], (None, False, True))
        self._check_group(group)
        for p in group["params"]:
            if not (p.is_floating_point()):
                raise ConfigTypeError(
                    f"{self.name}: parameter dtype = {p.dtype} is not allowed: "
                    "expected a real floating dtype (float16, bfloat16, float32, float64)"
                )

    def _check_group(self, group: dict[str, Any]) -> None:
        """Validate this optimizer's own hyperparameters (subclasses)."""

    # -- state ----------------------------------------------------------------------------------

    def _buffer_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        """The buffers this group's hyperparameters need (default: all of ``state_keys``)."""
        return self.state_keys

    def _init_state(self, p: Tensor, group: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
        state = self.state[p]
        if self.counts_steps and "step" not in state:
            state["step"] = torch.zeros((), dtype=torch.float32, device=_step_device(p, group))
        for key in keys:
            if key not in state:
                state[key] = torch.full_like(
                    p, self._init_fill(key, group), memory_format=torch.preserve_format
                )
        return state

    def _init_fill(self, key: str, group: dict[str, Any]) -> float:
        """Initial value of buffer ``key`` (0 unless a subclass says otherwise)."""
        return 0.0

    def _buckets(self, group: dict[str, Any]) -> list[Bucket]:
        buckets: dict[tuple[torch.device, torch.dtype], Bucket] = {}
        keys = self._buffer_keys(group)
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise ConfigError.invalid(
                    f"{self.name}.grad", "sparse", "dense gradients (sparse gradients are not supported)"
                )
            state = self._init_state(p, group, keys)
            b = buckets.get((p.device, p.dtype))
            if b is None:
                b = buckets[(p.device, p.dtype)] = Bucket(p.device, p.dtype, buffers={k: [] for k in keys})
            b.params.append(p)
            b.grads.append(p.grad)
            if self.counts_steps:
                b.steps.append(state["step"])
            for key in keys:
                b.buffers[key].append(state[key])
        return list(buckets.values())

    # -- the step -------------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient; returns ``closure()`` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for bucket in self._buckets(group):
                if bucket.steps:
                    _count_step(bucket.steps)
                lists, hyper = self._rule_inputs(group, bucket)
                self._apply(bucket, lists, hyper, group["fused"])
        return loss

    def _apply(self, b: Bucket, lists: tuple[Any, ...], hyper: dict[str, Any], fused: bool | None) -> None:
        """Run the update on one bucket by the path ``fused`` selects (see the module docstring)."""
        if fused is not False and b.device.type in _NATIVE_DEVICES and self._native(b, lists, hyper):
            return
        hyper = self._rule_hyper(b, hyper)
        if fused is not False and b.device.type == "cpu" and self.cpu_kernel is not None:
            rest = run_kernel(self.cpu_kernel, lists, hyper, everything=bool(fused))
            if rest is None:
                return
            lists, hyper = rest
        if fused:
            run_compiled(type(self).rule, lists, hyper, self.compiled_tensors)
        elif fused is None and b.device.type == "cpu":
            run_chunked(type(self).rule, lists, hyper)
        else:
            type(self).rule(*lists, **hyper)

    def _rule_inputs(self, group: dict[str, Any], b: Bucket) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The rule's tensor lists (params, grads, buffers in ``_buffer_keys`` order) and keyword scalars."""
        lists = (b.params, b.grads, *(b.buffers[k] for k in self._buffer_keys(group)))
        hyper: dict[str, Any] = {}
        for key in self._hyper_keys:
            value = group[key]
            if key == "betas":
                hyper["beta1"], hyper["beta2"] = scalar(value[0]), scalar(value[1])
            elif key == "maximize":
                hyper[key] = bool(value)
            elif key != "fused":
                hyper[key] = scalar(value)
        return lists, hyper

    def _rule_hyper(self, b: Bucket, hyper: dict[str, Any]) -> dict[str, Any]:
        """Scalars only the rule needs (not the native kernel), e.g. Adam's step counts."""
        return hyper

    def _native(self, b: Bucket, lists: tuple[Any, ...], hyper: dict[str, Any]) -> bool:
        """Run torch's native fused kernel if one computes this equation here; return whether it did."""
        return False

    @staticmethod
    def rule(*lists: list[Tensor], **hyper: Any) -> None:
        """The update rule over tensor lists (``torch._foreach_*``), set by each subclass."""
        raise NotImplementedError


_NATIVE_DEVICES = ("cpu", "cuda")
_ONE = torch.tensor(1.0)


def _step_device(p: Tensor, group: dict[str, Any]) -> torch.device | str:
    """Step counters live on the CPU, except on CUDA when torch's fused kernels (which read them) may run."""
    return p.device if p.is_cuda and group["fused"] is not False else "cpu"


def _count_step(steps: list[Tensor]) -> None:
    """t ← t + 1 for every counter (on the CPU with one wrapped 1.0, not one per tensor, as torch does)."""
    if steps[0].is_cpu:
        torch._foreach_add_(steps, _ONE, alpha=1.0)
    else:
        torch._foreach_add_(steps, 1.0)


def run_compiled(
    rule: Callable[..., None], lists: tuple[Any, ...], hyper: dict[str, Any], tensors: tuple[str, ...] = ()
) -> None:
    """Apply ``rule`` tensor by tensor through its ``torch.compile``'d form: one single-pass loop per tensor.

    Shapes are dynamic, and the scalars named in ``tensors`` go in as 0-d float64 tensors — graph
    inputs; a Python float would be baked into the kernel as a constant, so that a learning-rate
    schedule recompiled the rule at every step — so one compiled kernel serves every tensor size and
    every learning rate; hyperparameters given per tensor (lists) are sliced alongside.
    Tensors under :data:`COMPILED_MIN_NUMEL` elements, where the ~50–100 µs a compiled call costs
    exceeds the memory traffic it saves, go through the eager multi-tensor rule together instead
    (cache-blocked on the CPU, :func:`run_chunked`). On CUDA the large tensors go through one call
    together (one recompile per number of tensors).
    """
    fn = compiled(rule)
    small = [i for i, p in enumerate(lists[0]) if p.numel() < COMPILED_MIN_NUMEL]
    big = [i for i, p in enumerate(lists[0]) if p.numel() >= COMPILED_MIN_NUMEL]
    if big:
        device = lists[0][big[0]].device
        inputs = {
            k: (torch.tensor(v, dtype=torch.float64, device=device) if k in tensors else v)
            for k, v in hyper.items()
        }
        # CPU: one call per tensor (one compiled loop serves every size); CUDA: one call for all of them —
        # a call costs a launch and its Python guards (~50-100 µs), more than a GPU's pass over 4 M values
        for idx in [big] if device.type == "cuda" else [[i] for i in big]:
            fn(*([t[i] for i in idx] for t in lists), **_pick(inputs, idx))
    if small:
        rest = tuple([t[i] for i in small] for t in lists)
        if lists[0][small[0]].device.type == "cpu":
            run_chunked(rule, rest, _pick(hyper, small))
        else:
            rule(*rest, **_pick(hyper, small))


COMPILED_MIN_NUMEL = 1 << 17


def run_kernel(
    name: str, lists: tuple[Any, ...], hyper: dict[str, Any], *, everything: bool = False
) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    """Apply the single-pass CPU kernel ``optim._kernels.<name>`` to the tensors it takes; return the
    (lists, hyper) of the others, or ``None`` when it took them all.

    It takes the bucket's contiguous tensors if its dtype is float32 or float64 — with ``everything``
    (``fused=True``) always, else only when they hold ≥ :data:`KERNEL_MIN_TOTAL` elements:
    a smaller step is too cheap to pay back the kernel's load (numba's import and on-disk cache, ~1 s
    once per process).
    """
    dtype = lists[0][0].dtype  # a bucket has one dtype
    take = [i for i in range(len(lists[0])) if all(t[i].is_contiguous() for t in lists)]
    if (
        dtype not in _KERNEL_DTYPES
        or not take
        or (not everything and sum(lists[0][i].numel() for i in take) < KERNEL_MIN_TOTAL)
        or (kernels := _cpu_kernels()) is None
    ):
        return lists, hyper
    getattr(kernels, name)(*([t[i] for i in take] for t in lists), **_pick(hyper, take))
    if len(take) == len(lists[0]):
        return None
    rest = sorted(set(range(len(lists[0]))) - set(take))
    return tuple([t[i] for i in rest] for t in lists), _pick(hyper, rest)


@functools.cache
def _cpu_kernels() -> Any:
    """``optim._kernels`` (imported on first use: it imports numba), or None — with a warning, once — if
    numba cannot run here (then the foreach rules serve)."""
    try:
        from raytune_opt.optim import _kernels
    except Exception as err:  # numba missing, or no writable cache directory
        warnings.warn(f"raytune_opt.optim: single-pass CPU kernels unavailable ({err!r})", stacklevel=3)
        return None
    return _kernels


_KERNEL_DTYPES = (torch.float32, torch.float64)
KERNEL_MIN_TOTAL = 1 << 20
"""Elements (of contiguous tensors) in a bucket from which the default path uses the CPU kernel."""
KERNEL_FUSED_DOC = "None: one-pass CPU kernel for large params, else foreach; True: one pass; False: foreach"
"""The ``fused`` hyperparameter's registry doc for the optimizers with a CPU kernel (Lion, RMSProp)."""


def _pick(hyper: dict[str, Any], idx: list[int]) -> dict[str, Any]:
    """``hyper`` with its per-tensor lists restricted to the tensors ``idx``."""
    return {k: ([v[i] for i in idx] if isinstance(v, list) else v) for k, v in hyper.items()}


def _blocks(lists: tuple[Any, ...], hyper: dict[str, Any]) -> list[tuple[tuple[list[Tensor], ...], dict]]:
    """The (tensor lists, hyperparameters) of each block of :func:`run_chunked`."""
    blocks = []
    group: list[int] = []
    size = 0
    for i, p in enumerate(lists[0]):
        numel = p.numel()
        if numel >= 2 * CHUNK_NUMEL and all(t[i].is_contiguous() for t in lists):
            flat = [t[i].view(-1) for t in lists]
            one = _pick(hyper, [i])
            blocks += [
                (tuple([f[a : a + CHUNK_NUMEL]] for f in flat), one) for a in range(0, numel, CHUNK_NUMEL)
            ]
            continue
        group.append(i)
        size += numel
        if size >= CHUNK_NUMEL:
            blocks.append((tuple([t[j] for j in group] for t in lists), _pick(hyper, group)))
            group, size = [], 0
    if group:
        blocks.append((tuple([t[j] for j in group] for t in lists), _pick(hyper, group)))
    return blocks


def run_chunked(rule: Callable[..., None], lists: tuple[Any, ...], hyper: dict[str, Any]) -> None:
    """Apply the foreach ``rule`` block by block, each block about :data:`CHUNK_NUMEL` elements.

    A contiguous tensor of at least 2 ``CHUNK_NUMEL`` elements is cut into flat slices of that many
    (views: the rule updates the tensors in place); smaller ones (and non-contiguous ones) are grouped,
    whole, until a group holds that many. Every op of the rule is elementwise, so the result is the
    whole-tensor rule's, bit for bit.

    The blocks are shared out among ``torch.get_num_threads()`` worker threads, each running its ops on
    one intra-op thread, which take the next block as they finish one: each core streams its own blocks
    through its own cache, with one join per step instead of one fork-join per op (a fork-join per op
    also stalls whenever another process holds a core: measured 50x slower medians on a loaded 2-core
    machine). One block, or one thread, runs in the caller.
    """
    blocks = _blocks(lists, hyper)
    threads = torch.get_num_threads()
    if len(blocks) == 1 or threads == 1:
        for block, hyp in blocks:
            rule(*block, **hyp)
        return
    todo = iter(blocks)
    lock = threading.Lock()
    grad_mode = torch.is_grad_enabled()  # thread-local: the workers take the caller's (no_grad in step)

    def work() -> None:
        with torch.set_grad_enabled(grad_mode):
            while True:
                with lock:
                    item = next(todo, None)
                if item is None:
                    return
                rule(*item[0], **item[1])

    futures = [pool.submit(work) for pool in [_workers(threads)] for _ in range(threads)]
    for f in futures:
        f.result()


_POOL: tuple[int, ThreadPoolExecutor] | None = None
_POOL_LOCK = threading.Lock()


def _workers(n: int) -> ThreadPoolExecutor:
    """The process's ``n`` block workers, each set to one intra-op thread (started on first use)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None and _POOL[0] == n:
            return _POOL[1]
        if _POOL is not None:
            _POOL[1].shutdown(wait=False)
        before = torch.get_num_threads()
        ready = threading.Barrier(n + 1)

        def init() -> None:
            # torch sets a thread's intra-op thread count from the process default at its first parallel
            # op (lazily); trigger that first, then set this thread's own (and, in passing, the default)
            torch.get_num_threads()
            torch.set_num_threads(1)
            ready.wait()

        pool = ThreadPoolExecutor(n, thread_name_prefix="raytune-opt-block", initializer=init)
        for _ in range(n):  # no thread is idle while the others wait at the barrier: n threads start
            pool.submit(int)
        ready.wait()
        torch.set_num_threads(before)  # restore the process-wide default the workers' set-up changed
        _POOL = (n, pool)
        return pool


def _forget_pool() -> None:
    global _POOL
    _POOL = None


os.register_at_fork(after_in_child=_forget_pool)  # a forked child has none of the parent's threads

CHUNK_NUMEL = 1 << 18
"""Elements per cache block of :func:`run_chunked`: 1 MiB a float32 buffer, so that the few buffers and
temporaries of a block per core stay in the L2/L3 caches of current CPUs, while a 16 M-parameter step is
still only ~64 blocks of a few foreach calls each (whose Python dispatch the worker threads share)."""
