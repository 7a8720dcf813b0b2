"""Make a local Hugging Face model directory without a network: a small Llama and a tokenizer trained here.

    python examples/make_local_model.py OUT_DIR [--data FILE.jsonl] [--layers N] [--hidden N]

OUT_DIR then holds what `task.model` of a `causal-lm` config needs (config.json, model.safetensors,
tokenizer.json and tokenizer_config.json, written by `save_pretrained`). The weights are random: the
directory is for trying the pipeline end to end (a run, a comparison, the PEFT export), not for a result.
For a real model, see examples/README.md ("A local Hugging Face model").

Needs the worker's `hf` extra (transformers, tokenizers); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DEFAULT_DATA = (
    Path(__file__).resolve().parent.parent / "native-worker/riemannlora/assets/default/data/train.jsonl"
)
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]


def texts(path: Path) -> list[str]:
    """Every string field of every JSON line (text, prompt, completion, …): what the tokenizer learns from."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.extend(v for v in json.loads(line).values() if isinstance(v, str))
    return out


def make(out_dir: Path, data: Path, layers: int, hidden: int, seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        texts(data),
        trainers.BpeTrainer(
            vocab_size=512, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    fast.save_pretrained(out_dir)
    return out_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a .jsonl file to train the tokenizer on")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=64)
    args = ap.parse_args()
    out = make(args.out_dir, args.data, args.layers, args.hidden)
    print(f"wrote a {args.layers}-layer Llama (hidden {args.hidden}) and its tokenizer to {out}")


if __name__ == "__main__":
    main()
