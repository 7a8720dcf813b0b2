"""A CPU proxy of an LLM: blocks with Llama-like layer shapes (hidden 2048, MLP 8192), depth cut for CPU.

Each block is `h = h + down(silu(up(attn(h))))` with an attention-shaped 2048×2048 projection and the
MLP pair 2048→8192→2048, all adapted. Two models (manifold adapters for Riemannion, factor adapters for
LoRA-AdamW) share the same frozen base weights, so the comparison is on identical layers and the process
holds the base only once.
"""

from __future__ import annotations

import common  # noqa: F401 - puts native-worker/ on sys.path
import torch
from torch import nn

TARGETS = ["attn", "up", "down"]


class Block(nn.Module):
    def __init__(self, attn: nn.Linear, up: nn.Linear, down: nn.Linear):
        super().__init__()
        self.attn, self.up, self.down = attn, up, down

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.down(nn.functional.silu(self.up(self.attn(h))))


class Stack(nn.Module):
    def __init__(self, blocks: list[Block]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            h = block(h)
        return h


def base_weights(blocks: int, hidden: int, mlp: int, seed: int = 0, dtype=torch.float32) -> list[dict]:
    gen = torch.Generator().manual_seed(seed)

    def w(out_f: int, in_f: int) -> nn.Parameter:
        return nn.Parameter(
            torch.randn(out_f, in_f, generator=gen, dtype=dtype) / in_f**0.5, requires_grad=False
        )

    return [{"attn": w(hidden, hidden), "up": w(mlp, hidden), "down": w(hidden, mlp)} for _ in range(blocks)]


def stack_from(weights: list[dict]) -> Stack:
    """A fresh Stack whose Linear layers use (share) the given weight Parameters."""
    blocks = []
    for ws in weights:
        lins = {}
        for name, weight in ws.items():
            lin = nn.Linear(weight.shape[1], weight.shape[0], bias=False, device="meta")
            lin.weight = weight
            lins[name] = lin
        blocks.append(Block(**lins))
    return Stack(blocks)


def adapted_pair(weights: list[dict], rank: int, seed: int = 0) -> tuple[Stack, Stack]:
    """(manifold-adapted stack, factor-adapted stack) over the same base weights."""
    from riemannlora.adapters import inject_adapters

    torch.manual_seed(seed)
    manifold = stack_from(weights)
    inject_adapters(manifold, rank, TARGETS, parametrization="manifold")
    factors = stack_from(weights)
    inject_adapters(factors, rank, TARGETS, parametrization="factors", alpha=2 * rank)
    # LoRA's B starts at zero; give it small values so the benchmark does not time a degenerate state
    with torch.no_grad():
        for p in factors.parameters():
            if p.requires_grad and p.abs().sum() == 0:
                p.normal_(0, 1e-3)
    return manifold, factors


def trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def optimizer_state_bytes(opt: torch.optim.Optimizer) -> int:
    """Sum of the bytes of every tensor in the optimizer state (views of one storage counted once each)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for state in opt.state.values():
        for value in state.values():
            if torch.is_tensor(value):
                key = (value.data_ptr(), value.numel())
                if key in seen:
                    continue
                seen.add(key)
                total += value.numel() * value.element_size()
    return total
