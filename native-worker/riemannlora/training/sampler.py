"""Deterministic, resumable data order: a fresh seeded permutation of the training set every epoch.

The permutation of epoch e depends only on (seed, e), and the state is just (epoch, position), so a
checkpoint records the data order exactly in two integers and a resumed run draws the same batches.
"""

from __future__ import annotations

import torch


class EpochSampler:
    def __init__(self, n: int, seed: int):
        if n < 1:
            raise ValueError("the training set is empty")
        self.n = n
        self.seed = seed
        self.epoch = 0
        self.position = 0
        self._perm: list[int] | None = None

    def _permutation(self) -> list[int]:
        if self._perm is None:
            gen = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) % (2**63))
            self._perm = torch.randperm(self.n, generator=gen).tolist()
        return self._perm

    def next(self, k: int) -> list[int]:
        """The next k example indices (crossing into the next epoch when needed)."""
        out: list[int] = []
        while len(out) < k:
            perm = self._permutation()
            take = min(k - len(out), self.n - self.position)
            out += perm[self.position : self.position + take]
            self.position += take
            if self.position == self.n:
                self.epoch += 1
                self.position = 0
                self._perm = None
        return out

    def state_dict(self) -> dict[str, int]:
        return {"n": self.n, "seed": self.seed, "epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state["n"] != self.n or state["seed"] != self.seed:
            raise ValueError(
                f"checkpoint data order is for {state['n']} examples / seed {state['seed']}, "
                f"this run has {self.n} / {self.seed}: the data changed since the checkpoint"
            )
        self.epoch, self.position, self._perm = state["epoch"], state["position"], None
