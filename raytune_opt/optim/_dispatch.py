"""Where a first-order step runs: the one place that picks the execution path and sets its threads.

The update rules (``sgd_update`` … ``lion_update``) are the bare equations, written once over lists of
tensors with ``torch._foreach_*`` ops; an optimizer may also name torch's native fused kernel that
computes its equation (its ``_native`` method) and a single-pass CPU kernel (``cpu_kernel``, in
``optim._kernels``). :func:`run` applies one bucket (the parameters of a group on one device, of one
dtype) through one of these paths:

  native     torch's fused kernel (``torch._fused_sgd_`` / ``_fused_adagrad_`` / ``_fused_adam(w)_``),
             only for tensors whose parameter, gradient and state share one dense layout (torch's CPU
             fused kernels index raw memory: they give wrong updates for strided views, or a gradient
             laid out unlike its parameter);
  kernel     this project's single-pass numba loop (CPU, float32 / float64, contiguous tensors);
  compiled   the rule compiled by ``torch.compile`` into one single-pass loop (any device and dtype);
  chunked    the foreach rule applied to ~1 MiB blocks by worker threads (CPU, :func:`run_chunked`);
  foreach    the foreach rule over whole tensors (torch's multi-tensor implementation);
  single     the rule tensor by tensor (torch's for-loop implementation).

The group's two flags have torch's meanings, ``None`` leaving the choice to this module:

  ``fused=None, foreach=None`` (default)  native where it computes the equation here; else on the CPU
            the numba kernel for float32 / float64 buckets whose contiguous tensors hold ≥
            :data:`KERNEL_MIN_TOTAL` elements; the rest chunked on the CPU, foreach elsewhere.
  ``fused=True``     a fused kernel: native, else the numba kernel (CPU float32 / float64, contiguous),
            else compiled (tensors under :data:`COMPILED_MIN_NUMEL` elements take the eager rule, as
            the default would without fused kernels: a compiled call costs more than it saves there).
            ``foreach=True`` with it is an error.
  ``fused=False``    never a fused kernel (native, numba or compiled): chunked on the CPU, else foreach.
  ``foreach=True``   the foreach rule over whole tensors.
  ``foreach=False``  never the foreach rule: fused kernels where the default would take them, the rest
            single (torch's for-loop).

While ``torch.compile`` traces a step (``torch.compile(opt.step)``) the rule itself runs, whole
tensors (single with ``foreach=False``): torch's CPU fused kernels have no fake-tensor implementation,
and numba loops and worker threads cannot be traced; the compiler fuses the rule anyway.

Every path computes the same equation: chunked and single run the foreach ops on the same values
(bit-identical to foreach); native, kernel and compiled agree to rounding.

Threads: the chunked path's worker threads and the numba kernels' threads both follow
``torch.get_num_threads()`` (:func:`threads`).
"""

from __future__ import annotations

import functools
import os
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

__all__ = [
    "CHUNK_NUMEL",
    "COMPILED_MIN_NUMEL",
    "KERNEL_MIN_TOTAL",
    "Bucket",
    "compiled",
    "run",
    "run_chunked",
    "run_compiled",
    "run_eager",
    "run_kernel",
    "same_dense_layout",
    "threads",
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
    #: the parameters themselves (``params`` holds their real views where they are complex)
    sources: list[Tensor] = field(default_factory=list)

    @property
    def lists(self) -> tuple[list[Tensor], ...]:
        """The rule's tensor lists: params, grads, then the buffers in the optimizer's order."""
        return (self.params, self.grads, *self.buffers.values())

    def __len__(self) -> int:
        return len(self.params)

    def subset(self, idx: list[int]) -> Bucket:
        """The bucket of the tensors ``idx`` only."""
        return Bucket(
            self.device,
            self.dtype,
            [self.params[i] for i in idx],
            [self.grads[i] for i in idx],
            [self.steps[i] for i in idx] if self.steps else [],
            {k: [v[i] for i in idx] for k, v in self.buffers.items()},
            [self.sources[i] for i in idx],
        )


class Rules(Protocol):
    """What the dispatcher needs of an optimizer (``FirstOrderOptimizer`` provides it)."""

    cpu_kernel: str | None
    native_kernel: bool
    compiled_tensors: tuple[str, ...]

    @staticmethod
    def rule(*lists: list[Tensor], **hyper: Any) -> None: ...

    def _native(self, b: Bucket, hyper: dict[str, Any]) -> bool: ...

    def _rule_hyper(self, b: Bucket, hyper: dict[str, Any]) -> dict[str, Any]: ...


_NATIVE_DEVICES = ("cpu", "cuda")


def run(opt: Rules, b: Bucket, hyper: dict[str, Any], fused: bool | None, foreach: bool | None) -> None:
    """Apply ``opt``'s update to bucket ``b`` by the path the flags select (see the module docstring)."""
    rule, tracing = type(opt).rule, torch.compiler.is_compiling()
    rest = b if tracing else _fused_kernels(opt, b, hyper, fused, foreach)
    if rest is None:
        return
    lists, rule_hyper = rest.lists, opt._rule_hyper(rest, hyper)
    if fused and not tracing:
        run_compiled(rule, lists, rule_hyper, opt.compiled_tensors, foreach=foreach)
    else:
        run_eager(rule, lists, rule_hyper, foreach=True if tracing and foreach is None else foreach)


def run_eager(
    rule: Callable[..., None], lists: tuple[Any, ...], hyper: dict[str, Any], *, foreach: bool | None
) -> None:
    """The rule without a fused kernel: tensor by tensor (``foreach=False``), over whole tensors
    (``foreach=True``), or by default cache-blocked over worker threads on the CPU (:func:`run_chunked`)
    and over whole tensors elsewhere."""
    if foreach is False:
        for i in range(len(lists[0])):
            rule(*([t[i]] for t in lists), **_pick(hyper, [i]))
    elif foreach is None and lists[0][0].device.type == "cpu":
        run_chunked(rule, lists, hyper)
    else:
        rule(*lists, **hyper)


def _fused_kernels(
    opt: Rules, b: Bucket, hyper: dict[str, Any], fused: bool | None, foreach: bool | None
) -> Bucket | None:
    """Run the native and numba kernels on the tensors of ``b`` they take (as the flags allow); return the
    bucket of the other tensors, or ``None`` when none is left."""
    if fused is False or foreach is True:
        return b
    if opt.native_kernel and b.device.type in _NATIVE_DEVICES:
        lists = b.lists
        if all(all(map(Tensor.is_contiguous, ts)) for ts in lists):  # the usual case, checked at once
            dense = list(range(len(b)))
        else:
            dense = [i for i in range(len(b)) if same_dense_layout([t[i] for t in lists])]
        if dense and opt._native(b if len(dense) == len(b) else b.subset(dense), hyper):
            if len(dense) == len(b):
                return None
            b = b.subset(sorted(set(range(len(b))) - set(dense)))
    if b.device.type == "cpu" and opt.cpu_kernel is not None:
        return run_kernel(opt.cpu_kernel, b, opt._rule_hyper(b, hyper), everything=bool(fused))
    return b


def same_dense_layout(tensors: list[Tensor]) -> bool:
    """Whether tensors of one shape (a parameter, its gradient and state) share one set of strides that
    covers their elements without gaps or overlaps (contiguous in some order of the dimensions: what
    torch's fused kernels assume)."""
    if all(t.is_contiguous() for t in tensors):
        return True
    first = tensors[0]
    if any(t.stride() != first.stride() for t in tensors[1:]):
        return False
    expected = 1
    for stride, size in sorted((st, n) for st, n in zip(first.stride(), first.shape, strict=True) if n != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def threads() -> int:
    """The threads a step may use: torch's intra-op thread count (the chunked workers, numba's loops)."""
    return torch.get_num_threads()


@functools.cache
def compiled(fn: Callable[..., None]) -> Callable[..., None]:
    """``fn`` compiled by ``torch.compile`` (inductor, dynamic shapes), built lazily on its first call."""
    return torch.compile(fn, fullgraph=True, dynamic=True)


def run_compiled(
    rule: Callable[..., None],
    lists: tuple[Any, ...],
    hyper: dict[str, Any],
    tensors: tuple[str, ...] = (),
    *,
    foreach: bool | None = None,
) -> None:
    """Apply ``rule`` tensor by tensor through its ``torch.compile``'d form: one single-pass loop per tensor.

    Shapes are dynamic, and the scalars named in ``tensors`` go in as 0-d float64 tensors — graph
    inputs; a Python float would be baked into the kernel as a constant, so that a learning-rate
    schedule recompiled the rule at every step — so one compiled kernel serves every tensor size and
    every learning rate; hyperparameters given per tensor (lists) are sliced alongside. (The rules'
    ops take a 0-d tensor wherever they take a Python scalar, so the rule itself is unchanged.)
    Tensors under :data:`COMPILED_MIN_NUMEL` elements, where the ~50–100 µs a compiled call costs
    exceeds the memory traffic it saves, go through the eager rule instead (:func:`run_eager` with
    ``foreach``: by default the multi-tensor rule together, cache-blocked on the CPU). On CUDA the large
    tensors go through one call together (one recompile per number of tensors).
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
        run_eager(rule, tuple([t[i] for i in small] for t in lists), _pick(hyper, small), foreach=foreach)


COMPILED_MIN_NUMEL = 1 << 17


def run_kernel(name: str, b: Bucket, hyper: dict[str, Any], *, everything: bool = False) -> Bucket | None:
    """Apply the single-pass CPU kernel ``optim._kernels.<name>`` to the tensors of ``b`` it takes; return
    the bucket of the others, or ``None`` when it took them all.

    It takes the bucket's contiguous tensors whose buffers share the parameters' dtype (the loops read
    every buffer as that dtype; Lion's bfloat16 momentum is not) if that is float32 or float64 — with
    ``everything`` (``fused=True``) always, else only when they hold ≥ :data:`KERNEL_MIN_TOTAL` elements:
    a smaller step is too cheap to pay back the kernel's load (numba's import and on-disk cache, ~1 s
    once per process). The kernel's threads follow :func:`threads`.
    """
    lists = b.lists
    take = [i for i in range(len(b)) if all(t[i].is_contiguous() and t[i].dtype == b.dtype for t in lists)]
    if (
        b.dtype not in _KERNEL_DTYPES
        or not take
        or (not everything and sum(lists[0][i].numel() for i in take) < KERNEL_MIN_TOTAL)
        or (kernels := _cpu_kernels()) is None
    ):
        return b
    kernels.set_threads(threads())
    getattr(kernels, name)(*([t[i] for i in take] for t in lists), **_pick(hyper, take))
    if len(take) == len(b):
        return None
    return b.subset(sorted(set(range(len(b))) - set(take)))


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

    Cache blocking: a foreach rule of k ops makes k passes over memory, and its out-of-place ops allocate
    tensors as large as the parameters (fresh pages the kernel must fault in and zero). Applied to slices
    of ``CHUNK_NUMEL`` elements the intermediate passes stay in the L2/L3 cache and the temporaries are
    small, reused allocations, so a step moves little more memory than a single-pass kernel.

    A contiguous tensor of at least 2 ``CHUNK_NUMEL`` elements is cut into flat slices of that many
    (views: the rule updates the tensors in place); smaller ones (and non-contiguous ones) are grouped,
    whole, until a group holds that many. Every op of the rule is elementwise, so the result is the
    whole-tensor rule's, bit for bit.

    The blocks are shared out among :func:`threads` worker threads, each running its ops on one
    intra-op thread, which take the next block as they finish one: each core streams its own blocks
    through its own cache, with one join per step instead of one fork-join per op (a fork-join per op
    also stalls whenever another process holds a core: measured 50x slower medians on a loaded 2-core
    machine). One block, or one thread, runs in the caller.
    """
    blocks = _blocks(lists, hyper)
    n = threads()
    if len(blocks) == 1 or n == 1:
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

    futures = [pool.submit(work) for pool in [_workers(n)] for _ in range(n)]
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
