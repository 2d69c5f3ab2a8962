"""``apply_chat_template`` of ``ptfunc.tokenize`` against ``transformers``' on real chat templates.

Reference: ``transformers.AutoTokenizer`` 5.x loaded from the same directory
(``tokenizer.json`` + ``tokenizer_config.json`` / ``chat_template.jinja``), and its
``apply_chat_template``; tolerance: rendered text and ids equal exactly, and the same
exception type and message when a template raises.

Templates (``tests/data/chat_templates``, sources in ``SOURCE.md``): Llama 3.1/3.3-Instruct
(tools, built-in tools, ``date_string``), Llama 3.2-Instruct (``strftime_now``),
Qwen2.5-Instruct (tools, tool responses) and Mistral-7B-Instruct-v0.2 (``raise_exception``
on role order). The tokenizer is a small byte-level BPE trained here, with the templates'
control tokens as special tokens; no shared fixture is needed.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from jinja2.exceptions import SecurityError, TemplateError

from ptfunc.tokenize import PreTrainedTokenizerFast, render_chat_template
from ptfunc.tokenize.chat_template import compile_chat_template

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

TEMPLATES = Path(__file__).parent / "data" / "chat_templates"
SPECIAL = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|python_tag|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<s>",
    "</s>",
    "<unk>",
]
CONFIGS = {
    "llama3": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "llama3_2": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "qwen2": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "bos_token": None},
    "mistral": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
}
TOOL_TEMPLATES = ["llama3", "llama3_2", "qwen2"]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather <now> & 'later' in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "Città, e.g. Zürich"}},
            "required": ["city"],
        },
    },
}
CONVERSATIONS = {
    "one user turn": [{"role": "user", "content": "Hello <b>there</b> é 😀"}],
    "system and turns": [
        {"role": "system", "content": "  Be brief.  "},
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello. How can I help?"},
        {"role": "user", "content": "Tell me\na joke."},
    ],
    "user assistant": [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": " 4 "},
    ],
}
TOOL_CALL = [
    {"role": "system", "content": "You can call tools."},
    {"role": "user", "content": "What's the weather in Paris?"},
    {
        "role": "assistant",
        "content": None,  # dropped, as transformers drops None values
        "tool_calls": [
            {
                "type": "function",
                "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
            }
        ],
    },
    {"role": "tool", "name": "get_weather", "content": "22 °C, sunny"},
    {"role": "tool", "name": "get_weather", "content": '{"humidity": 40}'},
]
TEXT = """The quick brown fox jumps over the lazy dog. Hello, how are you today?
I'm fine, thanks! What's the weather like in Paris, Zürich or São Paulo?
Tools: get_weather(city) returns the temperature. {"name": "x", "parameters": {}}
Be brief. Tell me a joke. Cutting Knowledge Date: December 2023. Today Date: 26 Jul 2024.
You are Qwen, created by Alibaba Cloud. You are a helpful assistant. [INST] [/INST]
"""


@pytest.fixture(scope="module")
def backend():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TEXT.split("\n") * 20, trainer)
    return tok


@pytest.fixture(scope="module")
def directories(backend, tmp_path_factory) -> dict[str, Path]:
    out = {}
    for name, config in CONFIGS.items():
        directory = tmp_path_factory.mktemp(name)
        backend.save(str(directory / "tokenizer.json"))
        template = (TEMPLATES / f"{name}.jinja").read_text(encoding="utf-8")
        if name in ("llama3", "mistral"):  # in tokenizer_config.json, as older repos keep it
            config = {**config, "chat_template": template}
        else:  # in chat_template.jinja, as newer repos keep it
            (directory / "chat_template.jinja").write_text(template, encoding="utf-8")
        (directory / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
        out[name] = directory
    return out


@pytest.fixture(scope="module")
def loaded(directories):
    return {
        name: (
            PreTrainedTokenizerFast.from_pretrained(directory),
            transformers.AutoTokenizer.from_pretrained(str(directory)),
        )
        for name, directory in directories.items()
    }


def _outcome(call):
    """The result of ``call()``, or the type and message of what it raised."""
    try:
        return call()
    except Exception as err:  # noqa: BLE001 - compared between the two libraries
        return ("raised", type(err), str(err))


def _check_same(ours, hf, conversation, **options):
    """Text and ids equal (or the same exception); returns the text."""
    text = _outcome(lambda: ours.apply_chat_template(conversation, tokenize=False, **options))
    want = _outcome(lambda: hf.apply_chat_template(conversation, tokenize=False, **options))
    assert text == want
    if isinstance(want, str):
        ids = ours.apply_chat_template(conversation, return_dict=False, **options)
        assert ids == hf.apply_chat_template(conversation, return_dict=False, **options)
        assert ids == ours.encode(text)  # the template writes the special tokens itself
        encoded = ours.apply_chat_template(conversation, **options)
        assert encoded == dict(hf.apply_chat_template(conversation, **options))
    return text


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("conversation", list(CONVERSATIONS))
@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_conversations_match(loaded, name, conversation, add_generation_prompt):
    ours, hf = loaded[name]
    _check_same(ours, hf, CONVERSATIONS[conversation], add_generation_prompt=add_generation_prompt)


@pytest.mark.parametrize("name", TOOL_TEMPLATES)
@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_tool_call_conversation_matches(loaded, name, add_generation_prompt):
    ours, hf = loaded[name]
    text = _check_same(
        ours, hf, TOOL_CALL, tools=[WEATHER], add_generation_prompt=add_generation_prompt
    )
    assert "get_weather" in text and "Città" in text  # tojson keeps non-ASCII
    # the same conversation without the tool schemas, and with the tools in the system turn
    _check_same(ours, hf, TOOL_CALL[:3])
    if name.startswith("llama3"):
        _check_same(ours, hf, TOOL_CALL, tools=[WEATHER], tools_in_user_message=False)


def test_llama3_variables_and_builtin_tools(loaded):
    ours, hf = loaded["llama3"]
    conversation = CONVERSATIONS["system and turns"]
    text = _check_same(ours, hf, conversation, date_string="01 Jan 2030")
    assert "Today Date: 01 Jan 2030" in text
    assert "Today Date: 26 Jul 2024" in _check_same(ours, hf, conversation)
    python_call = [
        {"role": "user", "content": "Search for ptfunc"},
        {
            "role": "assistant",
            "tool_calls": [
                {"function": {"name": "brave_search", "arguments": {"query": "ptfunc"}}}
            ],
        },
    ]
    text = _check_same(ours, hf, python_call, builtin_tools=["brave_search", "code_interpreter"])
    assert '<|python_tag|>brave_search.call(query="ptfunc")<|eom_id|>' in text


def test_llama3_2_dates_with_strftime_now(loaded):
    ours, hf = loaded["llama3_2"]
    from datetime import datetime

    text = _check_same(ours, hf, CONVERSATIONS["one user turn"])
    assert f"Today Date: {datetime.now().strftime('%d %b %Y')}" in text


@pytest.mark.parametrize(
    "name, conversation, options",
    [
        ("mistral", CONVERSATIONS["system and turns"], {}),  # system role
        ("mistral", [{"role": "assistant", "content": "hi"}], {}),  # starts with the assistant
        ("mistral", [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], {}),
        ("llama3", [{"role": "system", "content": "only a system turn"}], {"tools": [WEATHER]}),
        (
            "llama3",
            [
                {"role": "user", "content": "two calls"},
                {"role": "assistant", "tool_calls": [TOOL_CALL[2]["tool_calls"][0]] * 2},
            ],
            {},
        ),
    ],
)
def test_raise_exception_matches(loaded, name, conversation, options):
    ours, hf = loaded[name]
    got = _outcome(lambda: ours.apply_chat_template(conversation, **options))
    want = _outcome(lambda: hf.apply_chat_template(conversation, **options))
    assert got[0] == "raised" and got == want
    assert got[1] is TemplateError


def test_batch_with_left_padding_and_tensors(loaded):
    ours, hf = loaded["qwen2"]
    batch = list(CONVERSATIONS.values())
    options = {"add_generation_prompt": True, "padding": True, "return_tensors": "pt"}
    hf.padding_side = ours.padding_side = "left"
    got = ours.apply_chat_template(batch, **options)
    want = hf.apply_chat_template(batch, **options)
    assert set(got) == set(want) == {"input_ids", "attention_mask"}
    for key in want:
        assert torch.equal(got[key], want[key]), key
    assert got["attention_mask"][:, -1].all()  # left padding: every prompt ends at the right
    assert ours.apply_chat_template(batch, tokenize=False) == hf.apply_chat_template(
        batch, tokenize=False
    )
    texts = ours.apply_chat_template(batch, tokenize=False, add_generation_prompt=True)
    assert ours.batch_decode(got["input_ids"], skip_special_tokens=False)[0].endswith(texts[0])


@pytest.mark.parametrize("name", ["llama3", "qwen2"])
def test_continue_final_message(loaded, name):
    ours, hf = loaded[name]
    conversation = [*CONVERSATIONS["user assistant"][:1], {"role": "assistant", "content": "It is"}]
    text = _check_same(ours, hf, conversation, continue_final_message=True)
    assert text.endswith("It is")
    both = _outcome(
        lambda: ours.apply_chat_template(
            conversation, continue_final_message=True, add_generation_prompt=True
        )
    )
    assert both[0] == "raised" and both[1] is ValueError


GENERATION_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n"
    "{% if m.role == 'assistant' %}{% generation %}{{ m.content }}<|im_end|>{% endgeneration %}"
    "{% else %}{{ m.content }}<|im_end|>{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_assistant_tokens_mask(loaded):
    ours, hf = loaded["qwen2"]
    conversation = CONVERSATIONS["system and turns"]
    options = {"chat_template": GENERATION_TEMPLATE, "return_assistant_tokens_mask": True}
    got = ours.apply_chat_template(conversation, **options)
    want = hf.apply_chat_template(conversation, **options)
    assert got["input_ids"] == want["input_ids"]
    assert got["assistant_masks"] == want["assistant_masks"] and 1 in got["assistant_masks"]
    batch = [conversation, CONVERSATIONS["user assistant"]]
    got = ours.apply_chat_template(batch, padding=True, return_tensors="pt", **options)
    want = hf.apply_chat_template(batch, padding=True, return_tensors="pt", **options)
    for key in ("input_ids", "attention_mask", "assistant_masks"):
        assert torch.equal(got[key], torch.as_tensor(want[key])), key


SANDBOX_TEMPLATES = {
    "tojson": "{{ messages | tojson }}|{{ messages[0] | tojson(indent=2, sort_keys=True) }}",
    "tojson separators": "{{ {'b': [1, 2], 'a': '<&>'} | tojson(separators=(',', ':')) }}",
    "loopcontrols": "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}"
    "{{ m.content }}{% endfor %}",
    "namespace and dict": "{% set ns = namespace(n=0) %}{% for m in messages %}"
    "{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }} {{ dict(a=1) | tojson }}"
    " {{ dict.fromkeys(['x'], 0) | tojson }}",
    "trim and lstrip blocks": "A\n  {% if true %}\n  B\n  {% endif %}\nC"
    "{{ bos_token }}{{ eos_token }}",
    "variables": "{{ tools | tojson }} {{ documents | tojson }} {{ add_generation_prompt }}"
    " {{ custom }} {{ pad_token }} {{ unk_token is defined }}",
    "namespace underscore": "{% set ns = namespace(_x=1) %}",
    "dunder access": "{{ messages.__class__ }}",
    "mutation": "{{ messages.append(1) }}",
    "syntax error": "{% for %}",
}


@pytest.mark.parametrize("case", list(SANDBOX_TEMPLATES))
def test_environment_matches(loaded, case):
    ours, hf = loaded["qwen2"]
    conversation = [
        {"role": "user", "content": "<b>ç</b> & 'q' \"d\""},
        {"role": "assistant", "content": "ok", "extra": None, "n": 3, "f": 1.5, "flag": False},
    ]
    options = {
        "chat_template": SANDBOX_TEMPLATES[case],
        "documents": [{"title": "T", "text": "doc"}],
        "custom": {"k": [1, "é"]},
    }
    got = _outcome(lambda: ours.apply_chat_template(conversation, tokenize=False, **options))
    want = _outcome(lambda: hf.apply_chat_template(conversation, tokenize=False, **options))
    if isinstance(want, tuple):  # same exception type; messages from jinja2 itself
        assert got[0] == "raised" and got[1] is want[1], (got, want)
        if case == "namespace underscore":
            assert got[1] is SecurityError
    else:
        assert got == want


def test_messages_as_objects(loaded):
    @dataclasses.dataclass
    class Message:
        role: str
        content: str
        name: str | None = None

    ours, hf = loaded["qwen2"]
    conversation = [Message("user", "hi"), Message("assistant", "hello", name=None)]
    assert ours.apply_chat_template(conversation, tokenize=False) == hf.apply_chat_template(
        conversation, tokenize=False
    )


def test_render_chat_template_alone():
    template = (TEMPLATES / "mistral.jinja").read_text(encoding="utf-8")
    text = render_chat_template(
        template,
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
        bos_token="<s>",
        eos_token="</s>",
    )
    assert text == "<s>[INST] Hi [/INST]Hello</s>"
    assert compile_chat_template(template) is compile_chat_template(template)  # memoised
    with pytest.raises(TemplateError, match="Conversation roles must alternate"):
        render_chat_template(template, [{"role": "assistant", "content": "x"}], bos_token="<s>")
    with pytest.raises(TypeError, match="JSON schemas"):
        render_chat_template(template, [], tools=[len])


def test_templates_load_save_and_select(directories, tmp_path):
    ours = PreTrainedTokenizerFast.from_pretrained(directories["qwen2"])
    assert ours.chat_template == (TEMPLATES / "qwen2.jinja").read_text(encoding="utf-8")
    ours.save_pretrained(tmp_path / "one")
    assert (tmp_path / "one" / "chat_template.jinja").read_text(encoding="utf-8") == (
        ours.chat_template
    )
    assert "chat_template" not in json.loads(
        (tmp_path / "one" / "tokenizer_config.json").read_text()
    )
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "one"))
    conversation = CONVERSATIONS["system and turns"]
    assert hf.apply_chat_template(conversation, tokenize=False) == ours.apply_chat_template(
        conversation, tokenize=False
    )
    # chat_template.jinja wins over the config's entry
    config = json.loads((tmp_path / "one" / "tokenizer_config.json").read_text())
    config["chat_template"] = "ignored"
    (tmp_path / "one" / "tokenizer_config.json").write_text(json.dumps(config))
    assert PreTrainedTokenizerFast.from_pretrained(tmp_path / "one").chat_template == (
        ours.chat_template
    )
    # named templates: default and tool_use, picked as transformers picks them
    ours.chat_template = {"default": "default:{{ messages[0].content }}", "tool_use": "tools!"}
    ours.save_pretrained(tmp_path / "two")
    assert (tmp_path / "two" / "additional_chat_templates" / "tool_use.jinja").is_file()
    again = PreTrainedTokenizerFast.from_pretrained(tmp_path / "two")
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "two"))
    assert again.chat_template == hf.chat_template == ours.chat_template
    for options in ({}, {"tools": [WEATHER]}, {"chat_template": "tool_use"}):
        assert again.apply_chat_template(conversation, tokenize=False, **options) == (
            hf.apply_chat_template(conversation, tokenize=False, **options)
        )


def test_no_chat_template(backend, tmp_path):
    backend.save(str(tmp_path / "tokenizer.json"))
    ours = PreTrainedTokenizerFast.from_pretrained(tmp_path)
    hf = transformers.PreTrainedTokenizerFast.from_pretrained(str(tmp_path))
    conversation = CONVERSATIONS["one user turn"]
    with pytest.raises(ValueError, match="has no chat template.*chat_template.jinja"):
        ours.apply_chat_template(conversation)
    with pytest.raises(ValueError):
        hf.apply_chat_template(conversation)
    with pytest.raises(ValueError, match="empty conversation"):
        ours.apply_chat_template([], chat_template="x")
    template = "{% for m in messages %}{{ m.content }}{% endfor %}"
    assert ours.apply_chat_template(conversation, chat_template=template, tokenize=False) == (
        hf.apply_chat_template(conversation, chat_template=template, tokenize=False)
    )
