"""`builtin-default`: the causal-lm task on the small pretrained model and fine-tuning set shipped with the
project (`riemannlora.assets`: `default_model_dir()`, `default_data_dir()` with `train.jsonl` and
`eval.jsonl` of {"prompt", "completion"} records; see riemannlora/assets/default/README.md for what they are).

It is exactly `causal-lm` with the model and data fixed, plus recommended task settings (sequence length),
so a new user's first experiment and `npm run demo` need nothing but an adapter and a method.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .causal_lm import CausalLMTask


def _assets():
    from riemannlora.errors import WorkerError

    try:
        from riemannlora import assets
    except ImportError as exc:
        raise WorkerError(
            "missing-path",
            "the built-in default model and data (riemannlora.assets) are not part of this installation",
            "reinstall riemannlora from the project (the assets ship inside the package), or use task.kind "
            "causal-lm with your own model and data",
            field="/task/kind",
        ) from exc
    return assets


class BuiltinDefaultTask(CausalLMTask):
    kind = "builtin-default"

    def __init__(self, config: dict[str, Any]):
        from riemannlora.errors import WorkerError

        assets = _assets()
        model_dir = Path(assets.default_model_dir())
        data_dir = Path(assets.default_data_dir())
        for path, what in (
            (model_dir / "config.json", "the built-in model"),
            (data_dir / "train.jsonl", "the built-in training data"),
            (data_dir / "eval.jsonl", "the built-in evaluation data"),
        ):
            if not path.is_file():
                raise WorkerError(
                    "missing-path",
                    f"{what} is missing: {path} does not exist",
                    "rebuild them with `python native-worker/tools/make_default_assets.py` (see "
                    "riemannlora/assets/default/README.md) or reinstall riemannlora",
                )
        super().__init__(
            config,
            model_ref=str(model_dir),
            data_ref=str(data_dir / "train.jsonl"),
            eval_ref=str(data_dir / "eval.jsonl"),
        )

    def evaluate(self, model, *, batch_size: int, max_batches: int, autocast: Any) -> dict[str, float]:
        # The documented accuracy is over the whole held-out split (a few hundred short records, a second or
        # two on a CPU), so every run reports the same, comparable number whatever its batch settings; with
        # task.heldout validation or test, over the whole of that half (eval_examples holds just it).
        chunk = max(batch_size, 100)
        n = len(self.eval_examples)
        return super().evaluate(model, batch_size=chunk, max_batches=-(-n // chunk), autocast=autocast)
