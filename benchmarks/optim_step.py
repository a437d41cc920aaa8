"""Optimizer step throughput against torch.optim, lion-pytorch, pytorch_optimizer and the memory bandwidth.

An optimizer step is a streaming pass over memory: each float32 parameter reads θ, g and its state and
writes θ and its state back, so the fastest possible step moves 4·(3 + 2k) … bytes a parameter (k state
buffers; 12 for SGD, 20 for Momentum/Nesterov/RMSProp/Adagrad/Lion, 28 for Adam/AdamW). The ceiling is
the best bandwidth of plain in-place streaming passes (``torch._foreach_add_`` / ``mul_`` / ``addcmul_``,
``copy_``) over the same tensors, measured in the same run; "of ceiling" is the step's bandwidth at that
minimal traffic divided by it.

Every implementation runs on the same parameters and gradients, one step per round, interleaved round by
round so that load from other processes hits them alike; the table reports the best round (params/s) and
the median, and the load average before and after (other processes sharing the cores make the median,
and even the best, slower than an idle machine would). "of ceiling" is given from the best times and as
the median over rounds of the same round's ratio (paired: each step against the best ceiling pass of its
own round), and "vs torch peer" as the median over rounds of the peer's time over ours in that round —
paired estimates, which a loaded machine disturbs far less than ratios of bests.

    python benchmarks/optim_step.py            # 16 M float32 params: 4 tensors, then 400 tensors of 40 k
    python benchmarks/optim_step.py --quick    # small sizes, no fused=True rows (the test suite runs this)
    python benchmarks/optim_step.py --device cuda  # the same rows on a GPU (timed to each step's last kernel)
    python benchmarks/optim_step.py --state-only   # only the table of optimizer-state bytes per parameter

The first table is the memory side (seed 3.4: Lion keeps one buffer, Adam two): the state bytes per
float32 parameter of each optimizer (``optim.state_bytes``), beside torch.optim's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from raytune_opt import optim

# bytes a float32 parameter must move in one step: read θ, g, state; write θ, state
STATE_BUFFERS = {
    "sgd": 0,
    "momentum": 1,
    "nesterov": 1,
    "rmsprop": 1,
    "adagrad": 1,
    "adam": 2,
    "adamw": 2,
    "lion": 1,
}
PEER = {  # the torch.optim optimizer computing the same function (RMSprop: ε outside the root; Lion: none)
    "sgd": "torch SGD fused",
    "momentum": "torch SGD(momentum) fused",
    "nesterov": "torch SGD(nesterov) fused",
    "rmsprop": "torch RMSprop foreach",
    "adagrad": "torch Adagrad fused",
    "adam": "torch Adam fused",
    "adamw": "torch AdamW fused",
    "lion": "torch AdamW fused",
}
CPU = torch.device("cpu")
LR = 1e-6  # tiny, so that thousands of steps leave the parameters where they are


@dataclass
class Row:
    label: str
    name: str  # registry name whose equation it computes
    make: Callable[[list[torch.Tensor]], torch.optim.Optimizer]
    times: list[float] = field(default_factory=list)
    opt: torch.optim.Optimizer | None = None

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def moved_bytes(name: str) -> int:
    return 4 * (3 + 2 * STATE_BUFFERS[name])


#: the optimizers of the state-bytes table: (label, registry name, hyperparameters, torch peer or None)
STATE_ROWS = [
    ("sgd", "sgd", {}, lambda p: torch.optim.SGD(p, lr=LR)),
    ("momentum", "momentum", {}, lambda p: torch.optim.SGD(p, lr=LR, momentum=0.9)),
    ("nesterov", "nesterov", {}, lambda p: torch.optim.SGD(p, lr=LR, momentum=0.9, nesterov=True)),
    ("rmsprop", "rmsprop", {}, lambda p: torch.optim.RMSprop(p, lr=LR)),
    ("rmsprop momentum=0.9", "rmsprop", {"momentum": 0.9}, lambda p: torch.optim.RMSprop(p, momentum=0.9)),
    ("adagrad", "adagrad", {}, lambda p: torch.optim.Adagrad(p, lr=LR)),
    ("adam", "adam", {}, lambda p: torch.optim.Adam(p, lr=LR)),
    ("adamw", "adamw", {}, lambda p: torch.optim.AdamW(p, lr=LR)),
    ("lion", "lion", {}, None),
    ('lion state_dtype="bfloat16"', "lion", {"state_dtype": "bfloat16"}, None),
]


def state_table() -> tuple[str, float, float]:
    """Optimizer-state bytes per float32 parameter (``optim.state_bytes`` after one step of a
    2-tensor model), ours beside torch.optim's (and lion-pytorch's for Lion, if installed); returns
    the table and Lion's and bf16 Lion's state relative to Adam's."""
    try:
        import lion_pytorch
    except ImportError:
        lion_pytorch = None

    def stepped(make: Callable[[list[torch.Tensor]], torch.optim.Optimizer]) -> optim.StateBytes:
        params = [torch.zeros(256, 64, requires_grad=True), torch.zeros(64, requires_grad=True)]
        for p in params:
            p.grad = torch.full_like(p, 1e-3)
        opt = make(params)
        opt.step()
        return optim.state_bytes(opt)

    lines = [
        "## optimizer state per float32 parameter (`optim.state_bytes`, after one step)",
        "",
        "| optimizer | state B/param | + step counters (B per tensor) | peer | peer B/param | vs adam |",
        "| --- | ---: | ---: | --- | ---: | ---: |",
    ]
    measured = []
    for label, name, hp, peer in STATE_ROWS:
        sb = stepped(lambda p, name=name, hp=hp: optim.create(name, p, lr=LR, **hp))
        if peer is None and name == "lion" and lion_pytorch is not None and not hp:
            measured.append((label, sb, "lion-pytorch", stepped(lambda p: lion_pytorch.Lion(p, lr=LR))))
        else:
            measured.append((label, sb, "torch.optim" if peer else "—", stepped(peer) if peer else None))
    ours = {label: sb.per_param for label, sb, _, _ in measured}
    for label, sb, peer_name, peer_sb in measured:
        peer_txt = f"{peer_sb.per_param:g}" if peer_sb is not None else "—"
        lines.append(
            f"| {label} | {sb.per_param:g} | {sb.scalars // 2:g} | {peer_name} | {peer_txt} "
            f"| {sb.per_param / ours['adam']:.2f}× |"
        )
    lion, lion16 = ours["lion"] / ours["adam"], ours['lion state_dtype="bfloat16"'] / ours["adam"]
    lines += ["", f"state headline: lion = {lion:.2f}× adam's state bytes, bf16 lion = {lion16:.2f}×"]
    return "\n".join(lines), lion, lion16


def peer_label(name: str, device: torch.device) -> str:
    """The torch peer's row label (torch has no fused Adagrad on CUDA: its foreach one there)."""
    if name == "adagrad" and device.type == "cuda":
        return "torch Adagrad foreach"
    return PEER[name]


def rows(single_pass: bool, device: torch.device = CPU) -> list[Row]:
    out = []
    for name in STATE_BUFFERS:
        # Lion without weight decay, as the Lion peers' defaults (ours is λ = 0.1 by default)
        hp = {"lr": LR, "weight_decay": 0.0} if name == "lion" else {"lr": LR}
        out.append(Row(f"ours {name}", name, lambda p, name=name, hp=hp: optim.create(name, p, **hp)))
        # no native torch kernel: fused=True is the single-pass kernel (numba on the CPU — also the
        # default there for large parameters —, torch.compile on CUDA)
        if single_pass and name in ("nesterov", "rmsprop", "lion"):
            out.append(
                Row(
                    f"ours {name} fused=True",
                    name,
                    lambda p, name=name, hp=hp: optim.create(name, p, **hp, fused=True),
                )
            )
    t = torch.optim
    adagrad_kw = {"foreach": True} if device.type == "cuda" else {"fused": True}
    out += [
        Row("torch SGD fused", "sgd", lambda p: t.SGD(p, lr=LR, fused=True)),
        Row("torch SGD(momentum) fused", "momentum", lambda p: t.SGD(p, lr=LR, momentum=0.9, fused=True)),
        Row(
            "torch SGD(nesterov) fused",
            "nesterov",
            lambda p: t.SGD(p, lr=LR, momentum=0.9, nesterov=True, fused=True),
        ),
        Row("torch RMSprop foreach", "rmsprop", lambda p: t.RMSprop(p, lr=LR, foreach=True)),
        Row(
            peer_label("adagrad", device),
            "adagrad",
            lambda p: t.Adagrad(p, lr=LR, **adagrad_kw),
        ),
        Row("torch Adam fused", "adam", lambda p: t.Adam(p, lr=LR, fused=True)),
        Row("torch AdamW fused", "adamw", lambda p: t.AdamW(p, lr=LR, fused=True)),
    ]
    try:
        import lion_pytorch

        out.append(Row("lion-pytorch", "lion", lambda p: lion_pytorch.Lion(p, lr=LR)))
    except ImportError:
        print("lion-pytorch not installed: row left out", file=sys.stderr)
    try:
        import pytorch_optimizer

        out.append(Row("pytorch_optimizer Lion", "lion", lambda p: pytorch_optimizer.Lion(p, lr=LR)))
    except ImportError:
        print("pytorch_optimizer not installed: row left out", file=sys.stderr)
    return out


def ceiling_passes(params: list[torch.Tensor], grads: list[torch.Tensor], bufs: list[list[torch.Tensor]]):
    """In-place streaming passes over the same tensors, with the bytes each moves per parameter."""
    m, s = bufs
    return {
        "foreach_add_ (12 B)": (lambda: torch._foreach_add_(m, grads, alpha=1e-30), 12),
        "foreach_mul_ (8 B)": (lambda: torch._foreach_mul_(m, 1.0), 8),
        "copy_ (8 B)": (lambda: [a.copy_(b) for a, b in zip(m, s, strict=True)], 8),
        "foreach_addcmul_ (16 B)": (lambda: torch._foreach_addcmul_(m, s, grads, value=1e-30), 16),
    }


def _sync(device: torch.device) -> None:
    """Wait for the device's queued kernels (CUDA launches return before the work is done)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_case(
    shapes: list[tuple[int, ...]], rounds: int, single_pass: bool, device: torch.device = CPU
) -> tuple[str, float]:
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=gen).to(device).requires_grad_() for s in shapes]
    for p in params:
        p.grad = (torch.randn(p.shape, generator=gen) * 1e-2).to(device)
    n = sum(p.numel() for p in params)
    grads = [p.grad for p in params]
    bufs = [[torch.zeros_like(p) for p in params] for _ in range(2)]
    passes = ceiling_passes(params, grads, bufs)
    pass_times: dict[str, list[float]] = {k: [] for k in passes}

    table = rows(single_pass, device)
    for r in table:  # build the state and compile the kernels before anything is timed
        r.opt = r.make(params)
        r.opt.step()
    with torch.no_grad():
        for _ in range(rounds):
            for key, (fn, _) in passes.items():
                _sync(device)
                t0 = time.perf_counter()
                fn()
                _sync(device)
                pass_times[key].append(time.perf_counter() - t0)
            for r in table:
                _sync(device)
                t0 = time.perf_counter()
                r.opt.step()
                _sync(device)
                r.times.append(time.perf_counter() - t0)

    bandwidth = {k: b * n / min(v) for k, (_, b) in passes.items() for v in [pass_times[k]]}
    # per round: the best ceiling bandwidth of that round, for the paired "of ceiling"
    round_bw = [max(b * n / pass_times[k][i] for k, (_, b) in passes.items()) for i in range(rounds)]
    ceiling_key = max(bandwidth, key=bandwidth.get)
    ceiling = bandwidth[ceiling_key]
    by_label = {r.label: r for r in table}
    shape_txt = f"{len(shapes)} tensors of {shapes[0][0]:,}" if len(set(shapes)) == 1 else str(shapes)
    cuda = device.type == "cuda"
    where = torch.cuda.get_device_name(device) if cuda else f"{torch.get_num_threads()} threads"
    lines = [
        f"### {n / 1e6:.1f} M float32 parameters in {shape_txt}, {where}",
        "",
        "ceiling: "
        + ", ".join(f"{k} {v / 1e9:.1f} GB/s" for k, v in bandwidth.items())
        + f" → {ceiling / 1e9:.1f} GB/s",
        "",
        "| implementation | params/s (best) | params/s (median) | state B/param | moved B/step (per param) "
        "| of ceiling (best) | of ceiling (paired median) | vs torch peer (paired median) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]

    def paired(a: Row, b: Row) -> float:
        """median over rounds of b's time / a's time in the same round"""
        return statistics.median(tb / ta for ta, tb in zip(a.times, b.times, strict=True))

    for r in table:
        b = moved_bytes(r.name)
        frac = (b * n / r.best) / ceiling
        frac_paired = statistics.median(b * n / t / bw for t, bw in zip(r.times, round_bw, strict=True))
        peer_txt = ""
        if r.label.startswith("ours"):
            label = peer_label(r.name, device)
            if label in by_label:
                peer_txt = f"{paired(r, by_label[label]):.2f}× {label}"
            if r.name == "lion":
                for other in ("lion-pytorch", "pytorch_optimizer Lion"):
                    if other in by_label:
                        peer_txt += f", {paired(r, by_label[other]):.2f}× {other}"
        lines.append(
            f"| {r.label} | {n / r.best / 1e6:,.0f} M | {n / r.median / 1e6:,.0f} M "
            f"| {optim.state_bytes(r.opt).per_param:.0f} | {b * n / 1e6:,.0f} MB ({b}) "
            f"| {frac:.2f} | {frac_paired:.2f} "
            f"| {peer_txt} |"
        )
    lion = by_label["ours lion"]  # the default path
    adamw = by_label["torch AdamW fused"]
    headline = paired(lion, adamw)
    return "\n".join(lines), headline


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, few rounds, no fused=True rows")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument(
        "--no-compile", action="store_true", help="leave out the fused=True rows of Nesterov, RMSProp, Lion"
    )
    ap.add_argument("--save", default=None, help="also write the printed table to this markdown file")
    ap.add_argument("--device", default="cpu", help="cpu (the targets' case) or cuda: the same rows on a GPU")
    ap.add_argument("--state-only", action="store_true", help="only the optimizer-state bytes table")
    args = ap.parse_args(argv)
    state_text, _, _ = state_table()
    if args.state_only:
        print(state_text)
        return
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.quick:
        cases = [[(1 << 14,)] * 4, [(1_000,)] * 40]
        rounds, single_pass = args.rounds or 2, False
    else:
        cases = [[(1 << 22,)] * 4, [(40_000,)] * 400]
        rounds, single_pass = args.rounds or 25, not args.no_compile
    load0 = os.getloadavg()[0]
    out = [
        f"## optimizer step, torch {torch.__version__}, float32 on {device.type.upper()}, "
        f"best of {rounds} interleaved steps",
        "",
    ]
    out += [state_text, ""]
    headline = None
    for shapes in cases:
        text, h = run_case(shapes, rounds, single_pass, device)
        headline = h if headline is None else headline
        out += [text, ""]
        print(text + "\n", file=sys.stderr, flush=True)  # progress; the whole table goes to stdout at the end
    out += [
        f"load average (1 min) on {os.cpu_count()} cores: {load0:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end",
        "",
    ]
    out.append(
        f"headline (first case): ours lion = {headline:.2f}× torch AdamW fused params/s (paired median)"
    )
    text = "\n".join(out)
    print(text)
    if args.save:
        with open(args.save, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
