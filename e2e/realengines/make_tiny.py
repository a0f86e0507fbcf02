"""Makes the tiny real model the real-engine tests serve: a randomly
initialised Llama (hidden 256, 2 layers, 4 heads, 2 KV heads, ~1.5 M
parameters), saved as safetensors with config.json, a BPE tokenizer trained
on local text, and a chat template. Nothing is downloaded.

Only printable ASCII can come out: the tokenizer has no byte tokens (a
random model can otherwise emit bytes that are not valid UTF-8, which
engines then refuse), and the output rows of the special tokens but EOS
are zeroed so they are rarely sampled.

usage: python make_tiny.py OUT_DIR
"""
import os
import sys

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

TEXT = """gantry is a control plane for local language model serving. It starts
engines on demand, keeps the right ones loaded within the memory of the box,
switches models without losing requests, and puts one endpoint in front that
every client can speak to. Hallo, wie geht es dir heute? Mir geht es gut.
The quick brown fox jumps over the lazy dog. 0123456789 + - * / = ( ) [ ] { }
Pack my box with five dozen liquor jugs. How vexingly quick daft zebras jump!
"""

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def main(out):
    os.makedirs(out, exist_ok=True)
    printable = [chr(c) for c in range(32, 127)]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
        initial_alphabet=printable + ["\u2581"],
        limit_alphabet=len(printable) + 1,
    )
    tok.train_from_iterator([TEXT] * 50, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)

    torch.manual_seed(7)
    cfg = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        rms_norm_eps=1e-5,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for t in ("<unk>", "<s>", "<pad>"):
            model.lm_head.weight[fast.convert_tokens_to_ids(t)].zero_()
    model.save_pretrained(out, safe_serialization=True)
    n = sum(p.numel() for p in model.parameters())
    print(f"tiny llama: {n} parameters, vocab {len(fast)}, in {out}")


if __name__ == "__main__":
    main(sys.argv[1])
