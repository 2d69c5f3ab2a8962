"""examples/causal_lm_research.py on tiny random models, checked against independent code.

References:

* per-example numbers: plain ``torch.autograd.grad`` of each text's loss alone (no padding,
  no mask, no vmap), its norm, dot product and cosine with the query's gradient (1e-5 rel);
* activation patching: ``transformers`` 5 (eager attention) with the same weights and a
  forward pre-hook that overwrites the input of one decoder layer at one position with the
  clean run's (1e-5 abs), and two exact properties of the method: patching a position whose
  token both prompts share changes nothing at layer 0, patching the one position where they
  differ restores the clean score (1e-6);
* a pretrained directory (a GPT-NeoX saved by ``ptfunc.io.save_pretrained`` with a
  ``tokenizer.json``) loads through ``--model-name-or-path``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

import ptfunc
from ptfunc import tree

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "causal_lm_research.py"


def _example():
    spec = importlib.util.spec_from_file_location("causal_lm_research", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


EX = _example()
ARCHS = sorted(EX.TINY)
HF_ARCHS = {"llama": "Llama", "mistral": "Mistral"}  # reference for the patching scores


def autograd_grad(model, params, ids):
    """(loss, gradient leaves) of one unpadded text by plain autograd."""
    leaves, spec = tree.flatten(params)
    leaves = [x.detach().requires_grad_() for x in leaves]
    loss = model.apply(tree.unflatten(spec, leaves), ids[None], labels=ids[None]).loss
    return loss.detach(), torch.autograd.grad(loss, leaves)


def flat_dot(a, b):
    return sum((x.double() * y.double()).sum() for x, y in zip(a, b, strict=True))


def check_per_example(results, model, params, texts, query, encode):
    q_loss, q_grad = autograd_grad(model, params, torch.tensor(encode(query)))
    q_norm = flat_dot(q_grad, q_grad).sqrt()
    assert [e["text"] for e in results["per_example"]] == texts
    for e, text in zip(results["per_example"], texts, strict=True):
        ids = torch.tensor(encode(text))
        loss, g = autograd_grad(model, params, ids)
        norm, dot = flat_dot(g, g).sqrt(), flat_dot(g, q_grad)
        assert e["n_tokens"] == len(ids)
        assert e["loss"] == pytest.approx(loss.item(), rel=1e-5)
        assert e["grad_norm"] == pytest.approx(norm.item(), rel=1e-5)
        assert e["grad_dot_query"] == pytest.approx(dot.item(), rel=1e-5, abs=1e-6)
        cosine = (dot / (norm * q_norm)).item()
        assert e["grad_cosine_query"] == pytest.approx(cosine, rel=1e-5, abs=1e-6)


def hf_patching(arch, model, params, clean, corrupted, answers):
    """The patching matrix by transformers with forward pre-hooks on its decoder layers."""
    transformers = pytest.importorskip("transformers")
    name = HF_ARCHS[arch]
    config = getattr(transformers, name + "Config")(
        **model.config.to_dict(), attn_implementation="eager"
    )
    reference = getattr(transformers, name + "ForCausalLM")(config).eval()
    missing, unexpected = reference.load_state_dict(tree.to_flat_dict(params), strict=False)
    assert not missing and not unexpected
    with torch.no_grad():
        states = reference(clean, output_hidden_states=True).hidden_states
        scores = []
        for layer, block in enumerate(reference.model.layers):
            row = []
            for t in range(clean.shape[1]):

                def patch(module, args, kwargs, layer=layer, t=t):
                    h = (args[0] if args else kwargs["hidden_states"]).clone()
                    h[:, t] = states[layer][:, t]
                    return (
                        ((h, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": h})
                    )

                handle = block.register_forward_pre_hook(patch, with_kwargs=True)
                logits = reference(corrupted).logits
                handle.remove()
                row.append((logits[0, -1, answers[0]] - logits[0, -1, answers[1]]).item())
            scores.append(row)
    return torch.tensor(scores)


@pytest.mark.parametrize("arch", ARCHS)
def test_tiny_run_matches_independent_computations(arch, tmp_path):
    argv = ["--tiny", "--tiny-arch", arch, "--output-dir", str(tmp_path), "--chunk-size", "4"]
    argv += ["--quiet", "--query", "The dog sat on the mat"]
    results = EX.main(argv)
    assert json.loads((tmp_path / "causal_lm_research.json").read_text()) == results

    args = EX.parse_args(argv)
    model, params, tokenizer = EX.load(args)  # the same seed: the same random model
    check_per_example(results, model, params, args.text, args.query, tokenizer.encode)

    patching = results["patching"]
    clean = torch.tensor([tokenizer.encode(args.clean)])
    corrupted = torch.tensor([tokenizer.encode(args.corrupted)])
    answers = (tokenizer.encode(args.clean_answer)[0], tokenizer.encode(args.corrupted_answer)[0])
    assert patching["answers"] == list(answers)
    effect = torch.tensor(patching["effect"])
    assert effect.shape == (model.config.num_hidden_layers, clean.shape[1])
    assert patching["reconstruction_error"] < 1e-5
    (differ,) = (clean[0] != corrupted[0]).nonzero()[0].tolist()  # one differing token
    same = [t for t in range(clean.shape[1]) if t != differ]
    torch.testing.assert_close(effect[0, same], torch.full((len(same),), patching["corrupted"]))
    assert effect[0, differ].item() == pytest.approx(patching["clean"], abs=1e-6)
    normalized = torch.tensor(patching["normalized"])
    span = patching["clean"] - patching["corrupted"]
    torch.testing.assert_close(normalized, (effect - patching["corrupted"]) / span)
    if arch in HF_ARCHS:
        want = hf_patching(arch, model, params, clean, corrupted, answers)
        torch.testing.assert_close(effect, want, atol=1e-5, rtol=1e-5)


def test_a_pretrained_directory_with_a_tokenizer_json(tmp_path, capsys):
    pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    text = " ".join(EX.TEXTS)
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator([text] * 5, trainer)
    backend.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"})
    )
    config_cls, model_cls, extra = EX.TINY["gpt_neox"]
    config = config_cls(vocab_size=backend.get_vocab_size(), **EX.TINY_SIZES, **extra)
    model = model_cls(config)
    params = model.init(ptfunc.random.key(1))
    ptfunc.io.save_pretrained(tmp_path, model, params)

    texts = list(EX.TEXTS[:3])
    argv = ["--model-name-or-path", str(tmp_path), "--no-patching", "--quiet", "--chunk-size", "3"]
    results = EX.main(argv + [arg for t in texts for arg in ("--text", t)])
    assert "patching" not in results
    assert "grad_norm" in capsys.readouterr().out
    check_per_example(results, model, params, texts, texts[0], lambda t: backend.encode(t).ids)
