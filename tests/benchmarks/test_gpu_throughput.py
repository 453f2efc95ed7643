"""The CPU side of benchmarks/gpu_throughput.py: arguments, the no-GPU exit, the model it builds, its loop.

The GPU measurement itself needs CUDA; these checks keep the script working until one is available.
"""

from __future__ import annotations

import json

import pytest

import gpu_throughput


def test_defaults_fit_a_short_gpu_slot_and_bad_counts_are_refused():
    args = gpu_throughput.parse_args([])
    assert (args.steps, args.warmup, args.size, args.model, args.gpu_id) == (150, 20, "base", None, 0)
    with pytest.raises(SystemExit) as exc:
        gpu_throughput.parse_args(["--steps", "0"])
    assert exc.value.code == 2


def test_without_cuda_it_says_so_and_exits_cleanly(monkeypatch, capsys):
    monkeypatch.setattr(gpu_throughput, "cuda_problem", lambda: "no CUDA GPU is visible to PyTorch")
    assert gpu_throughput.main([]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out == ["gpu_throughput: skipped, no CUDA GPU is visible to PyTorch. Run it on a machine with a CUDA GPU."]


def test_base_size_is_roberta_base():
    from transformers import RobertaConfig

    config = RobertaConfig(**gpu_throughput.SIZES["base"])
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (768, 12, 12)
    assert (config.intermediate_size, config.vocab_size) == (3072, 50265)


def test_built_model_and_tokenizer_load_by_path(tmp_path, fashion_small):
    from transformers import AutoModel, AutoTokenizer

    texts = gpu_throughput.training_texts(fashion_small["train"].parent)
    info = gpu_throughput.build_roberta(tmp_path / "m", texts, size="tiny")
    model = AutoModel.from_pretrained(tmp_path / "m")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "m")
    assert model.config.model_type == "roberta" and model.config.vocab_size == 50265
    assert info["parameters"] == sum(p.numel() for p in model.parameters())
    ids = tokenizer("I bought boots from Red Wing")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert max(ids) < info["tokenizer_vocab"] <= 50265
    assert gpu_throughput.describe_model(tmp_path / "m") == json.loads(json.dumps(info))


@pytest.mark.slow
def test_the_timed_loop_trains_the_rendered_transformer_config_on_cpu(tmp_path, fashion_small, tiny_roberta):
    config = gpu_throughput.render(tmp_path, fashion_small["train"].parent, tiny_roberta, steps=3, gpu_id=-1)
    assert 'name = "%s"' % tiny_roberta in config.read_text()
    result = gpu_throughput.train_steps(config, mixed_precision=False, steps=2, warmup=1, gpu_id=-1)
    assert result["steps"] == 2 and result["words"] > 0 and result["words_per_second"] > 0
    assert result["loss_ner"] > 0
