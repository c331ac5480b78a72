"""A tiny GGUF model whose greedy (and any sane sampled) decoding follows a fixed token chain.

It is a one-layer ``qwen2`` model with a real tokenizer: the Qwen2 vocabulary shipped in
llama-cpp-python's sdist (``vendor/llama.cpp/models/ggml-vocab-qwen2.gguf``) with QwQ-32B's
added ``<think>``/``</think>`` tokens at their real ids (151667/151668, user-defined tokens as
in QwQ's own tokenizer), and QwQ-32B's real chat template (``models/templates/``), whose
generation prompt ends in ``<|im_start|>assistant\\n<think>\\n``. So, like QwQ on llama.cpp,
the reply has NO opening tag: reasoning, ``</think>``, the answer, ``<|im_end|>``.

The weights: attention and FFN are zero, so the last hidden state is the last token's embedding.
Each token that occurs in the chain gets a one-hot embedding; the output matrix maps it to its
successor with a logit of :data:`LOGIT` (every other token: 0), so the next token depends only
on the last one (a Markov chain) and any temperature up to ~2 still picks it. A few tokens also
have a second choice (logit :data:`SECOND`), taken when a grammar forbids the first: from the
end of the prompt, a server that constrains the output to JSON gets ``{"answer": 4}``.

Run ``python tests/llama/make_model.py`` to build it and print the paths; tests call
:func:`build`. The file is cached (keyed on everything that goes into it).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REASONING = "Okay, the user wants a short reply; let me keep it brief and friendly.\n"
ANSWER = "The answer is four."
JSON_ANSWER = '{"answer": 4}'
JSON_SCHEMA: dict[str, Any] = {
    "type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"],
}
ALIAS = "reasoner"  # served under a name that says nothing about thinking

LOGIT = 100.0
SECOND = 50.0
N_EMBD = 64
N_CTX = 2048
THINK_OPEN, THINK_CLOSE, IM_END = 151667, 151668, 151645
VERSION = 1  # bump when the construction changes

LLAMA_CPP_PYTHON = "0.3.36"  # keep in step with scripts/setup-llama.sh


def cache_dir() -> Path:
    base = os.environ.get("QWQMAGIC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "qwq-magic")
    return Path(base)


def assets_dir() -> Path:
    """The vocabulary and templates, extracted from the cached sdist if need be."""
    d = cache_dir() / "llama-assets" / LLAMA_CPP_PYTHON
    vocab = d / "ggml-vocab-qwen2.gguf"
    if vocab.is_file() and (d / "templates" / "Qwen-QwQ-32B.jinja").is_file():
        return d
    sdist = cache_dir() / "sdist" / f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz"
    if not sdist.is_file():
        raise FileNotFoundError(
            f"no llama-cpp-python assets in {d} and no sdist at {sdist}: run scripts/setup-llama.sh")
    top = f"llama_cpp_python-{LLAMA_CPP_PYTHON}/vendor/llama.cpp/models/"
    with tarfile.open(sdist) as tf:
        for name in ("ggml-vocab-qwen2.gguf", "templates/Qwen-QwQ-32B.jinja",
                     "templates/Qwen-Qwen3-0.6B.jinja"):
            member = tf.getmember(top + name)
            out = d / name
            out.parent.mkdir(parents=True, exist_ok=True)
            src = tf.extractfile(member)
            assert src is not None
            out.write_bytes(src.read())
    return d


def qwq_template(assets: Path) -> str:
    """QwQ-32B's template as published: llama.cpp's copy adds an ``enable_thinking`` switch
    that, when the variable is undefined (llama-cpp-python never sets it), closes the think
    block in the prompt; QwQ's own template has no such switch."""
    text = (assets / "templates" / "Qwen-QwQ-32B.jinja").read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines(keepends=True) if "enable_thinking" not in ln]
    out = "".join(lines)
    if not out.rstrip().endswith("{%- endif %}") or "<think>\\n" not in out:
        raise ValueError("unexpected QwQ template in the sdist")  # pragma: no cover
    return out


@dataclass(frozen=True)
class Model:
    """The built model and what it says."""

    path: Path
    alias: str
    reasoning: str
    answer: str
    json_answer: str
    reasoning_tokens: int  # tokens before </think>
    answer_tokens: int  # tokens after </think> (the "\n\n" included), <|im_end|> excluded
    completion_tokens: int  # the whole reply, <|im_end|> excluded
    json_tokens: int  # the JSON reply, <|im_end|> excluded

    @property
    def content(self) -> str:
        """The answer as a splitter should file it (after ``</think>`` and the blank line)."""
        return self.answer


def _vocab(assets: Path) -> tuple[list[str], list[int], list[str], dict[str, Any]]:
    import gguf

    r = gguf.GGUFReader(str(assets / "ggml-vocab-qwen2.gguf"))
    tokens = list(r.fields["tokenizer.ggml.tokens"].contents())
    types = list(r.fields["tokenizer.ggml.token_type"].contents())
    merges = list(r.fields["tokenizer.ggml.merges"].contents())
    meta = {k: r.fields[k].contents() for k in ("tokenizer.ggml.model", "tokenizer.ggml.pre")}
    tokens[THINK_OPEN], tokens[THINK_CLOSE] = "<think>", "</think>"
    types[THINK_OPEN] = types[THINK_CLOSE] = 4  # user-defined, as in QwQ's tokenizer
    return tokens, types, merges, meta


def _tokenize(assets: Path, text: str) -> list[int]:
    import llama_cpp

    global _TOK
    if _TOK is None:
        _TOK = llama_cpp.Llama(model_path=str(assets / "ggml-vocab-qwen2.gguf"),
                               vocab_only=True, verbose=False)
    return list(_TOK.tokenize(text.encode(), add_bos=False, special=True))


_TOK: Any = None


def _chains(assets: Path) -> tuple[list[int], list[int], list[int]]:
    """(the prompt's last tokens, the reply, the JSON reply) as token ids."""
    prompt_end = [THINK_OPEN, *_tokenize(assets, "\n")]
    reply = [*_tokenize(assets, REASONING), THINK_CLOSE, *_tokenize(assets, "\n\n" + ANSWER),
             IM_END]
    js = [*_tokenize(assets, JSON_ANSWER), IM_END]
    return prompt_end, reply, js


def _transitions(prompt_end: list[int], reply: list[int], js: list[int]
                 ) -> dict[int, list[tuple[int, float]]]:
    nxt: dict[int, list[tuple[int, float]]] = {}

    def link(a: int, b: int, logit: float) -> None:
        have = nxt.setdefault(a, [])
        for tok, lg in have:
            if lg == logit and tok != b:
                raise ValueError(f"token {a} has two successors ({tok}, {b}): change the texts")
        if (b, logit) not in have:
            have.append((b, logit))

    start = prompt_end[-1]
    link(start, reply[0], LOGIT)
    for a, b in itertools.pairwise(reply):
        link(a, b, LOGIT)
    link(start, js[0], SECOND)
    for a, b in itertools.pairwise(js):
        link(a, b, LOGIT)
    return nxt


def build(directory: Path | None = None) -> Model:
    """Build (or reuse) the model file; return where it is and what it says."""
    import numpy as np

    assets = assets_dir()
    template = qwq_template(assets)
    prompt_end, reply, js = _chains(assets)
    nxt = _transitions(prompt_end, reply, js)
    key = hashlib.sha256(json.dumps(
        [VERSION, REASONING, ANSWER, JSON_ANSWER, LOGIT, SECOND, N_EMBD, template,
         (assets / "ggml-vocab-qwen2.gguf").stat().st_size]).encode()).hexdigest()[:16]
    directory = directory or cache_dir() / "llama-models"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"reasoner-{key}.gguf"
    close = reply.index(THINK_CLOSE)
    model = Model(path=path, alias=ALIAS, reasoning=REASONING, answer=ANSWER,
                  json_answer=JSON_ANSWER, reasoning_tokens=close,
                  answer_tokens=len(reply) - close - 2, completion_tokens=len(reply) - 1,
                  json_tokens=len(js) - 1)
    if path.is_file():
        return model

    import gguf

    tokens, types, merges, meta = _vocab(assets)
    n_vocab = len(tokens)
    sources = sorted(nxt)
    if len(sources) > N_EMBD:
        raise ValueError(f"{len(sources)} chain tokens do not fit in n_embd={N_EMBD}")
    emb = np.zeros((n_vocab, N_EMBD), dtype=np.float32)
    out = np.zeros((n_vocab, N_EMBD), dtype=np.float32)
    scale = 1.0 / np.sqrt(N_EMBD)  # RMSNorm turns a one-hot row into sqrt(n_embd) * one-hot
    for i, tok in enumerate(sources):
        emb[tok, i] = 1.0
        for succ, logit in nxt[tok]:
            out[succ, i] = logit * scale
    n_ff = N_EMBD
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    w = gguf.GGUFWriter(str(tmp), "qwen2")
    w.add_name("qwq-magic tiny reasoner")
    w.add_context_length(N_CTX)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(1)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(1)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(1_000_000.0)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model(str(meta["tokenizer.ggml.model"]))
    w.add_tokenizer_pre(str(meta["tokenizer.ggml.pre"]))
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(151643)
    w.add_eos_token_id(IM_END)  # as in QwQ's GGUFs: <|im_end|> ends a turn
    w.add_pad_token_id(151643)
    w.add_add_bos_token(False)
    w.add_chat_template(template)
    f16 = np.float16
    w.add_tensor("token_embd.weight", emb.astype(f16))
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    w.add_tensor("output.weight", out.astype(f16))
    z = np.zeros
    blk = {
        "attn_norm.weight": np.ones(N_EMBD, dtype=np.float32),
        "attn_q.weight": z((N_EMBD, N_EMBD), dtype=f16),
        "attn_q.bias": z(N_EMBD, dtype=np.float32),
        "attn_k.weight": z((N_EMBD, N_EMBD), dtype=f16),
        "attn_k.bias": z(N_EMBD, dtype=np.float32),
        "attn_v.weight": z((N_EMBD, N_EMBD), dtype=f16),
        "attn_v.bias": z(N_EMBD, dtype=np.float32),
        "attn_output.weight": z((N_EMBD, N_EMBD), dtype=f16),
        "ffn_norm.weight": np.ones(N_EMBD, dtype=np.float32),
        "ffn_gate.weight": z((n_ff, N_EMBD), dtype=f16),
        "ffn_up.weight": z((n_ff, N_EMBD), dtype=f16),
        "ffn_down.weight": z((N_EMBD, n_ff), dtype=f16),
    }
    for name, arr in blk.items():
        w.add_tensor(f"blk.0.{name}", arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, path)
    return model


if __name__ == "__main__":  # pragma: no cover
    m = build(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    print(m)
