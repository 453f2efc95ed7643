"""GPU throughput: transformer + ner training words/s and peak GPU memory, mixed precision against fp32.

    python benchmarks/gpu_throughput.py [--steps 150] [--warmup 20] [--model DIR] [--data ...]

Model: RoBERTa-base-sized with random weights, built locally (nothing can be downloaded):
`transformers.RobertaConfig()` defaults (12 layers, hidden 768, 12 heads, FFN 3072, vocab 50265, ~125M
parameters) with a byte-level BPE tokenizer trained with `tokenizers` on the training texts. Speed and
memory depend on the architecture, not on the weights, so it stands in for roberta-base. `--model DIR`
uses a local Hugging Face RoBERTa instead (e.g. a copy of roberta-base).

The pipeline is the one `python run.py hardware=gpu_t4` trains: the runner renders config.cfg and converts
fashion_brands (`train=false`), then each precision trains in a fresh process with spaCy's own training
loop (`spacy.training.loop.train_while_improving`) on that config, with
`components.transformer.model.mixed_precision` set to false or true. The first `--warmup` steps (CUDA
start-up, allocator growth) are not timed; words/s counts the words of the timed steps. Peak memory is
PyTorch's peak allocation (the config routes cupy through PyTorch's allocator). Goal: mixed precision
>= 1.6x the fp32 words/s. Finishes in a few minutes on one GPU; without CUDA it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from harness import (
    FASHION,
    FASHION_OVERRIDES,
    PYTHON,
    BenchmarkError,
    check_data,
    clean_env,
    ratio_line,
    read_json,
    run_py_cmd,
    timed,
    workdir,
)

GOAL = 1.6
SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
# transformers.RobertaConfig() defaults are roberta-base's; "tiny" keeps the CPU test of this script fast.
SIZES: Dict[str, Dict[str, int]] = {
    "base": {},
    "tiny": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64},
}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150, help="timed training steps per precision (default 150)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps first (default 20)")
    parser.add_argument("--data", type=Path, default=FASHION, help="folder with train.jsonl and dev.jsonl")
    parser.add_argument("--model", type=Path, default=None, help="a local RoBERTa (default: build one)")
    parser.add_argument("--size", choices=sorted(SIZES), default="base", help="size of the built model")
    parser.add_argument("--gpu-id", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="keep everything here (default: temp dir)")
    # internal: one precision in a fresh process
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mixed-precision", choices=("true", "false"), default="false", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(list(argv))
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be >= 1 and --warmup >= 0")
    return args


def cuda_problem() -> Optional[str]:
    """Why this machine cannot run the benchmark, or None."""
    try:
        import torch
    except ImportError as err:
        return f"PyTorch is not importable ({err})"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible to PyTorch (torch.cuda.is_available() is False)"
    try:
        import cupy  # noqa: F401  spaCy/thinc need cupy for GPU training
    except ImportError:
        return "cupy is not installed (pip install -e '.[gpu]' installs cupy-cuda12x)"
    return None


# --------------------------------------------------------------------------- the model


def training_texts(data: Path) -> List[str]:
    with (data / "train.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh if line.strip()]


def build_roberta(out: Path, texts: Sequence[str], size: str = "base") -> Dict[str, Any]:
    """A random-weight RoBERTa of the given size and a byte-level BPE tokenizer trained on `texts`.

    The vocabulary size stays RobertaConfig's 50265 whatever the tokenizer learns, so the embedding
    matrix, and with it memory and parameter count, are roberta-base's.
    """
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(list(texts), vocab_size=50265, min_frequency=2, special_tokens=SPECIAL_TOKENS)
    bpe_dir = out / "bpe"
    bpe_dir.mkdir(exist_ok=True)
    bpe.save_model(str(bpe_dir))
    tokenizer = RobertaTokenizerFast(
        vocab_file=str(bpe_dir / "vocab.json"), merges_file=str(bpe_dir / "merges.txt"), model_max_length=512
    )
    tokenizer.save_pretrained(out)
    config = RobertaConfig(
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **SIZES[size],
    )
    model = RobertaModel(config)
    model.save_pretrained(out)
    info = {
        "model": f"RoBERTa-{size}-sized, random weights (transformers.RobertaConfig defaults"
        + ("" if size == "base" else f" with {SIZES[size]}")
        + ")",
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokenizer_vocab": tokenizer.vocab_size,
        "config_vocab": config.vocab_size,
        "path": str(out),
    }
    (out / "benchmark_model.json").write_text(json.dumps(info, indent=2))
    return info


def describe_model(path: Path) -> Dict[str, Any]:
    built = path / "benchmark_model.json"
    if built.is_file():
        return json.loads(built.read_text())
    config = json.loads((path / "config.json").read_text())
    return {"model": f"local model {path} ({config.get('model_type')}, hidden {config.get('hidden_size')}, "
            f"{config.get('num_hidden_layers')} layers)", "path": str(path)}  # fmt: skip


# --------------------------------------------------------------------------- the runner renders


def render(work: Path, data: Path, model: Path, steps: int, gpu_id: int) -> Path:
    """`python run.py hardware=gpu_t4 ... train=false`: the runner converts the data and writes config.cfg."""
    run_dir = work / "rendered"
    overrides = [
        f"data.train={data / 'train.jsonl'}",
        f"data.dev={data / 'dev.jsonl'}",
        *FASHION_OVERRIDES,
        "hardware=gpu_t4",
        f"hardware.gpu_id={gpu_id}",
        f"hardware.transformer_name={model}",
        f"hyperparameters.max_steps={steps}",
        f"data.cache_dir={work / 'cache'}",
        "tracking.enabled=false",
        "train=false",
        f"hydra.run.dir={run_dir}",
    ]
    timed(run_py_cmd(overrides), log=work / "render.log")
    return run_dir / "config.cfg"


# --------------------------------------------------------------------------- one precision


def train_steps(config_path: Path, *, mixed_precision: bool, steps: int, warmup: int, gpu_id: int) -> Dict[str, Any]:
    """Train `warmup + steps` steps with spaCy's loop; words/s over the timed steps, peak memory."""
    import torch
    from spacy import util
    from spacy.schemas import ConfigSchemaTraining
    from spacy.training.initialize import init_nlp
    from spacy.training.loop import create_train_batches, train_while_improving
    from thinc.api import fix_random_seed, require_gpu, set_gpu_allocator

    on_gpu = gpu_id >= 0
    if on_gpu:
        require_gpu(gpu_id)
    overrides = {
        "components.transformer.model.mixed_precision": mixed_precision,
        "training.max_steps": warmup + steps,
        "training.eval_frequency": warmup + steps + 1,
    }
    config = util.load_config(config_path, overrides=overrides, interpolate=False)
    nlp = init_nlp(config, use_gpu=gpu_id)
    # The set-up of spacy.training.loop.train, minus checkpoints, dev evaluation and logging.
    config = nlp.config.interpolate()
    fix_random_seed(config["training"]["seed"])
    if on_gpu and config["training"]["gpu_allocator"]:
        set_gpu_allocator(config["training"]["gpu_allocator"])
    T = util.registry.resolve(config["training"], schema=ConfigSchemaTraining)
    (train_corpus,) = util.resolve_dot_names(config, [T["train_corpus"]])
    batches = create_train_batches(nlp, train_corpus, T["batcher"], T["max_epochs"])
    loop = train_while_improving(
        nlp,
        T["optimizer"],
        batches,
        evaluate=lambda: (0.0, {}),  # throughput only: no dev evaluation inside the timed steps
        dropout=T["dropout"],
        accumulate_gradient=T["accumulate_gradient"],
        patience=0,
        max_steps=warmup + steps,
        eval_frequency=warmup + steps + 1,
        exclude=T["frozen_components"],
        annotating_components=T["annotating_components"],
        before_update=T["before_update"],
    )

    def sync() -> None:
        if on_gpu:
            torch.cuda.synchronize()

    start_words, start_time, last = 0, time.perf_counter(), None
    for _, info, _ in loop:
        last = info
        if info["step"] == warmup - 1:
            sync()
            start_words, start_time = info["words"], time.perf_counter()
    sync()
    elapsed = time.perf_counter() - start_time
    if last is None or last["step"] < warmup + steps - 1:
        raise BenchmarkError(f"training stopped after {0 if last is None else last['step'] + 1} steps")
    words = last["words"] - start_words
    result: Dict[str, Any] = {
        "mixed_precision": mixed_precision,
        "steps": steps,
        "warmup": warmup,
        "words": words,
        "seconds": elapsed,
        "words_per_second": words / elapsed,
        "loss_ner": float(last["losses"].get("ner", 0.0)),
    }
    if on_gpu:
        result.update(
            peak_allocated_bytes=torch.cuda.max_memory_allocated(),
            peak_reserved_bytes=torch.cuda.max_memory_reserved(),
            device=torch.cuda.get_device_name(),
        )
    return result


def run_worker(args: argparse.Namespace) -> int:
    result = train_steps(
        args.worker,
        mixed_precision=args.mixed_precision == "true",
        steps=args.steps,
        warmup=args.warmup,
        gpu_id=args.gpu_id,
    )
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


def measure(work: Path, config: Path, args: argparse.Namespace, mixed: bool) -> Dict[str, Any]:
    name = "mixed" if mixed else "fp32"
    out = work / f"{name}.json"
    cmd = [
        PYTHON, __file__, "--worker", str(config), "--mixed-precision", "true" if mixed else "false",
        "--steps", str(args.steps), "--warmup", str(args.warmup), "--gpu-id", str(args.gpu_id), "--out", str(out),
    ]  # fmt: skip
    timed(cmd, log=work / f"{name}.log", env=clean_env({"TOKENIZERS_PARALLELISM": "false"}))
    return read_json(out)


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        return run_worker(args)
    problem = cuda_problem() if args.gpu_id >= 0 else None
    if problem:
        print(f"gpu_throughput: skipped, {problem}. Run it on a machine with a CUDA GPU.")
        return 0
    check_data(args.data)
    data = args.data.resolve()
    with workdir(args.workdir) as work:
        started = time.perf_counter()
        if args.model is None:
            model_dir = work / f"roberta-{args.size}-random"
            info = describe_model(model_dir) if (model_dir / "config.json").is_file() else build_roberta(
                model_dir, training_texts(data), args.size
            )
        else:
            model_dir = args.model.resolve()
            info = describe_model(model_dir)
        print(f"model: {info['model']}, {info.get('parameters', '?')} parameters, at {model_dir}", flush=True)
        config = render(work, data, model_dir, args.warmup + args.steps, args.gpu_id)
        results = {}
        for mixed in (False, True):
            results[mixed] = measure(work, config, args, mixed)
            r = results[mixed]
            memory = f", peak {gib(r['peak_allocated_bytes'])} allocated" if "peak_allocated_bytes" in r else ""
            print(
                f"  {'mixed' if mixed else 'fp32 '}  {r['words_per_second']:9.0f} words/s "
                f"({r['words']} words in {r['seconds']:.1f}s){memory}",
                flush=True,
            )
        device = results[True].get("device", "CPU")
        print(f"device: {device}; {args.steps} timed steps after {args.warmup} warm-up steps; "
              f"total {time.perf_counter() - started:.0f}s")  # fmt: skip
        if "peak_allocated_bytes" in results[True]:
            mem = results[True]["peak_allocated_bytes"] / results[False]["peak_allocated_bytes"]
            print(f"peak memory mixed/fp32: {mem:.2f}")
    ratio = results[True]["words_per_second"] / results[False]["words_per_second"]
    print(ratio_line("gpu_throughput", ratio, f">= {GOAL}"))
    return 0 if ratio >= GOAL else 1


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchmarkError as err:
        sys.exit(f"error: {err}")
