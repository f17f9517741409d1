"""Generation speed: our Transformer against transformers' MarianMTModel, side by side in one process.

Both models have the base sizes of the paper (d_model 512, 6+6 layers, 8 heads, d_ff 2048) with a 32k vocabulary;
ours holds Marian's weights, converted, so both do the same arithmetic and produce the same tokens (checked).
Each workload generates exactly `--new-tokens` tokens from `--source-length` source tokens through `generate()`,
as users call it, and reports tokens/s (generated tokens over all rows, divided by wall time; median of
`--repeats` runs after a warm-up, the two models taking turns).

    python scripts/bench_generate.py                     # greedy batch 1 and 16, beam 4 at batch 1
    python scripts/bench_generate.py --threads 2 --repeats 10
"""

import argparse
from functools import partial

import torch
from benchmarking import median_times
from transformers import MarianConfig, MarianMTModel

from hf_visiontx.convert import from_transformers

WORKLOADS = (
    ("greedy, batch 1", 1, {"num_beams": 1}),
    ("greedy, batch 16", 16, {"num_beams": 1}),
    ("beam 4, batch 1", 1, {"num_beams": 4}),
)


def base_marian(vocab_size: int) -> MarianMTModel:
    """A random Marian with the Transformer-base sizes (the opus-mt checkpoints use these, with SiLU)."""
    config = MarianConfig(
        vocab_size=vocab_size, d_model=512, encoder_layers=6, decoder_layers=6, encoder_attention_heads=8,
        decoder_attention_heads=8, encoder_ffn_dim=2048, decoder_ffn_dim=2048, activation_function="swish",
        max_position_embeddings=512, pad_token_id=vocab_size - 1, decoder_start_token_id=vocab_size - 1,
        eos_token_id=0, forced_eos_token_id=None, scale_embedding=True,
    )
    torch.manual_seed(0)
    return MarianMTModel(config).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab-size", type=int, default=32000)
    parser.add_argument("--source-length", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    marian = base_marian(args.vocab_size)
    ours = from_transformers(marian).eval()
    models = {"marian": marian, "ours": ours}
    print(f"torch {torch.__version__}, {args.threads} threads; base sizes, vocab {args.vocab_size}, "
          f"{args.source_length} source tokens -> {args.new_tokens} new tokens")
    print(f"{'workload':<18} {'Marian tok/s':>13} {'ours tok/s':>11} {'ratio':>7}  same tokens")
    for name, batch_size, kwargs in WORKLOADS:
        generator = torch.Generator().manual_seed(batch_size)
        input_ids = torch.randint(1, args.vocab_size - 1, (batch_size, args.source_length), generator=generator)
        inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
        generate_kwargs = {"max_new_tokens": args.new_tokens, "min_new_tokens": args.new_tokens, **kwargs}
        results = median_times(
            {key: partial(model.generate, **inputs, **generate_kwargs) for key, model in models.items()},
            args.repeats,
        )
        (marian_time, marian_ids), (ours_time, our_ids) = results["marian"], results["ours"]
        tokens = batch_size * args.new_tokens
        print(f"{name:<18} {tokens / marian_time:>13.1f} {tokens / ours_time:>11.1f} "
              f"{marian_time / ours_time:>6.2f}x  {torch.equal(marian_ids, our_ids)}")


if __name__ == "__main__":
    main()
