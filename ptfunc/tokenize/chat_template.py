"""Chat templates: a conversation as the model's prompt text (and ids), by its Jinja template.

A chat model's ``tokenizer_config.json`` (or ``chat_template.jinja``) holds a Jinja
template that writes a list of messages ``[{"role": ..., "content": ...}, ...]`` in the
model's format (``<|start_header_id|>user<|end_header_id|>...``, ``<|im_start|>``,
``[INST]``). The template is untrusted code from the Hub, so it runs in Jinja's
:class:`~jinja2.sandbox.ImmutableSandboxedEnvironment`, set up as ``transformers`` does
so that the same template and messages give the same text:

- ``trim_blocks`` and ``lstrip_blocks``, the ``loopcontrols`` extension (``break`` /
  ``continue``) and a ``{% generation %}`` block marking assistant text;
- globals ``raise_exception(message)`` (raises :class:`jinja2.exceptions.TemplateError`),
  ``strftime_now(format)`` (today's date), ``namespace`` (refusing ``_``-prefixed
  attributes) and ``dict``;
- a ``tojson`` filter that is ``json.dumps`` (no HTML escaping, non-ASCII kept, with
  ``indent``, ``separators`` and ``sort_keys``), where Jinja's own escapes ``<>&'``;
- the variables ``messages``, ``tools``, ``documents``, ``add_generation_prompt``, the
  named special tokens (``bos_token``, ``eos_token``, ...) and any other keyword.

The inputs are copied into plain JSON data first (message objects, dataclasses and
pydantic models become dicts; keys whose value is None are dropped from each message;
other objects become ``"<TypeName>"``), and ``reasoning_content`` / ``thinking`` /
``reasoning`` are aliased to each other, as ``transformers`` does.

Compiled templates are memoised by their text (a bounded cache of a pure function).
Not offered: tools given as Python functions (pass their JSON schemas;
``transformers.utils.get_json_schema`` builds one) and ``sanitize_control_tokens``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.utils
import numpy as np
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from . import _encoding
from .base import _SINGLE_SPECIAL

__all__ = [
    "apply_chat_template",
    "compile_chat_template",
    "render_chat_template",
    "select_chat_template",
]

REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")
_JINJA_VERSION = tuple(int(part) for part in re.findall(r"\d+", jinja2.__version__)[:3])
_CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "
# (output so far, spans) of the render in progress that records {% generation %} blocks
_TRACKING: ContextVar[tuple[list[str], list[tuple[int, int]]] | None] = ContextVar(
    "ptfunc_chat_generation_spans", default=None
)


# ---------------------------------------------------------------------- the environment


class _GenerationBlock(jinja2.ext.Extension):
    """``{% generation %}...{% endgeneration %}``: renders its body; while a render records
    spans (:func:`_recording`), notes where the body lands in the output."""

    tags = {"generation"}

    def parse(self, parser: Any) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        call = self.call_method("_render_body")
        return jinja2.nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _render_body(self, caller: Any) -> str:
        text = caller()
        state = _TRACKING.get()
        if state is not None:
            chunks, spans = state
            start = sum(len(chunk) for chunk in chunks)
            spans.append((start, start + len(text)))
        return text


def _raise_exception(message: str) -> None:
    raise TemplateError(message)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | str | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(format: str) -> str:  # noqa: A002 - the name templates call it with
    return datetime.now().strftime(format)


class _DictFactory:
    """``dict(...)`` and ``dict.fromkeys(...)`` for templates, without the type itself."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict.fromkeys(*args, **kwargs)


class _Namespace(jinja2.utils.Namespace):
    """Jinja's ``namespace`` that refuses attribute names starting with ``_``."""

    def __init__(*args: Any, **kwargs: Any) -> None:  # noqa: N805 - Namespace's own trick
        self, rest = args[0], args[1:]
        attrs = dict(*rest, **kwargs)
        for name in attrs:
            _Namespace._check(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name: str, value: Any) -> None:
        _Namespace._check(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check(name: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise SecurityError(
                f"chat templates cannot set underscore-prefixed namespace attributes; got {name!r}"
            )


@functools.lru_cache(maxsize=64)
def compile_chat_template(template: str) -> jinja2.Template:
    """Compile a chat template in the sandboxed environment described in the module docstring.

    Args:
        template: Jinja source.

    Returns:
        The compiled template (memoised by its source).

    Raises:
        TypeError: ``template`` is not a str.
        ImportError: jinja2 is older than 3.1.6, whose sandbox has known escapes (chat
            templates from the Hub are untrusted code; ``transformers`` refuses them too).
        jinja2.exceptions.TemplateSyntaxError: the source is not valid Jinja.
    """
    if _JINJA_VERSION < (3, 1, 6):
        raise ImportError(
            f"chat templates need jinja2>=3.1.6 (its sandbox fixes known escapes); found "
            f"{jinja2.__version__}: pip install -U jinja2"
        )
    if not isinstance(template, str):
        raise TypeError(f"a chat template must be a str; got {type(template).__name__}")
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[_GenerationBlock, jinja2.ext.loopcontrols],
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["dict"] = _DictFactory()
    env.globals["namespace"] = _Namespace
    return env.from_string(template)


@contextlib.contextmanager
def _recording(chunks: list[str], spans: list[tuple[int, int]]) -> Iterator[None]:
    token = _TRACKING.set((chunks, spans))
    try:
        yield
    finally:
        _TRACKING.reset(token)


# ---------------------------------------------------------------------- inputs as plain data


def _as_dicts(value: Any) -> Any:
    """Message objects (dataclasses, pydantic models, mappings) as dicts, recursively."""
    if isinstance(value, Mapping):
        return {key: _as_dicts(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_dicts(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_as_dicts(item) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _as_dicts(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if callable(getattr(value, "model_dump", None)):
        return _as_dicts(value.model_dump())
    return value


def _plain(value: Any) -> Any:
    """A copy made of JSON types only (str, int, float, bool, None, dict, list, tuple);
    anything else becomes the placeholder ``"<TypeName>"``, as in ``transformers``."""
    kind = type(value)
    if value is None or kind in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    if isinstance(value, np.generic):  # np.bool_(False) must not become a truthy string
        return _plain(value.item())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if callable(getattr(value, "model_dump", None)):
        return _plain(value.model_dump())
    return f"<{kind.__name__}>"


def _messages(conversation: Any) -> list[dict[str, Any]]:
    """One conversation as plain message dicts, without the keys whose value is None."""
    messages = _as_dicts(getattr(conversation, "messages", conversation))
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TypeError(f"a conversation must be a list of messages; got {type(messages).__name__}")
    out = []
    for message in messages:
        if not isinstance(message, dict):
            raise TypeError(
                f"chat messages must be dicts (or dataclasses / pydantic models); got {message!r}"
            )
        out.append({key: value for key, value in message.items() if value is not None})
    return _plain(out)


def _alias_reasoning(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for message in messages:
        reasoning = next((message[k] for k in REASONING_FIELDS if message.get(k) is not None), None)
        if reasoning is not None:
            message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
        out.append(message)
    return out


def _dicts(value: Any, name: str, hint: str) -> list[dict[str, Any]] | None:
    """``tools`` / ``documents`` as plain data: None, or a list of dicts (else ``TypeError``)."""
    if value is None:
        return None
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a list of dicts; got {type(value).__name__}")
    for item in value:
        if not isinstance(item, Mapping):
            raise TypeError(f"{name} must be a list of dicts; got {type(item).__name__} ({hint})")
    return _plain(list(value))


# ---------------------------------------------------------------------- rendering


def select_chat_template(
    templates: str | Mapping[str, str] | None,
    chat_template: str | None = None,
    tools: Any = None,
) -> str:
    """The template to render: ``chat_template`` (a template, or a name among ``templates``),
    else the tokenizer's own (``tool_use`` when tools are given and it exists, else
    ``default``).

    Args:
        templates: the tokenizer's template(s): a str, ``{name: template}`` or None.
        chat_template: a template given by the caller, or a template name.
        tools: the tools of the call (only their presence matters).

    Returns:
        The Jinja source.

    Raises:
        ValueError: there is no template to use (the message says where one comes from),
            or several named templates and none chosen.
    """
    if isinstance(templates, Mapping):
        if chat_template is not None:
            return templates.get(chat_template, chat_template)
        if tools is not None and "tool_use" in templates:
            return templates["tool_use"]
        if "default" in templates:
            return templates["default"]
        raise ValueError(
            "this tokenizer has several chat templates and none is named 'default'; pass "
            f"chat_template= one of {sorted(templates)} (or a template)"
        )
    if chat_template is not None:
        return chat_template
    if templates is None:
        raise ValueError(
            "this tokenizer has no chat template: its tokenizer_config.json has no "
            "'chat_template' and there is no chat_template.jinja; pass chat_template=... "
            "or set tokenizer.chat_template"
        )
    return templates


def render_chat_template(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    documents: Sequence[Mapping[str, Any]] | None = None,
    add_generation_prompt: bool = False,
    continue_final_message: bool | str = False,
    return_generation_spans: bool = False,
    **variables: Any,
) -> str | tuple[str, list[tuple[int, int]]]:
    """Render one conversation with a chat template (no tokenizer involved).

    Args:
        template: the Jinja source.
        messages: ``[{"role": ..., "content": ...}, ...]`` (dicts, dataclasses or pydantic
            models; keys whose value is None are dropped).
        tools: JSON schemas of the tools the model may call.
        documents: ``[{"title": ..., "text": ...}, ...]`` for retrieval templates.
        add_generation_prompt: end with the header of a new assistant turn.
        continue_final_message: leave the last message open (no end-of-turn) so the
            model continues it; a str names the field to continue (e.g.
            ``"reasoning_content"``), True means ``"content"``.
        return_generation_spans: also return the ``(start, end)`` character spans of the
            ``{% generation %}`` blocks.
        **variables: more template variables (``bos_token="<s>"``, ``date_string=...``,
            ``enable_thinking=False``, ...).

    Returns:
        The text, or ``(text, spans)`` with ``return_generation_spans``.

    Raises:
        jinja2.exceptions.TemplateError: the template raised (``raise_exception``), e.g.
            for roles in an order the model does not accept.
        ValueError: ``continue_final_message`` with ``add_generation_prompt``, or with a
            last message the template does not write out.
        TypeError: messages, tools or documents of the wrong type.

    Example:
        >>> render_chat_template(
        ...     "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}",
        ...     [{"role": "user", "content": "hi"}],
        ... )
        '<user>hi'
    """
    compiled = compile_chat_template(template)
    chat = _alias_reasoning(_messages(messages))
    tool_schemas = _dicts(
        tools,
        "tools",
        "JSON schemas; transformers.utils.get_json_schema(function) builds one for a function",
    )
    docs = _dicts(documents, "documents", "with 'title' and 'text' keys")
    variables = _plain(variables)
    final_text = ""
    if continue_final_message:
        if add_generation_prompt:
            raise ValueError(
                "continue_final_message and add_generation_prompt cannot be used together: "
                "the first continues the last message, the second starts a new one"
            )
        final_text = _tag_final_message(template, chat, continue_final_message)
    context = {
        **variables,
        "messages": chat,
        "tools": tool_schemas,
        "documents": docs,
        "add_generation_prompt": add_generation_prompt,
    }
    spans: list[tuple[int, int]] = []
    if return_generation_spans:
        chunks: list[str] = []
        with _recording(chunks, spans):
            for chunk in compiled.generate(**context):
                chunks.append(chunk)
        text = "".join(chunks)
    else:
        text = compiled.render(**context)
    if continue_final_message:
        text = _cut_at_tag(text, final_text)
        spans = [(start, min(end, len(text))) for start, end in spans if start < len(text)]
    return (text, spans) if return_generation_spans else text


def _tag_final_message(template: str, chat: list[dict[str, Any]], field: bool | str) -> str:
    """Append the continuation tag to the last message's text (in place); returns that text."""
    if not chat:
        raise ValueError("continue_final_message is set but the conversation is empty")
    name = field if isinstance(field, str) else "content"
    final = chat[-1].get(name)
    if final is None:
        raise ValueError(
            f"continue_final_message is set but the last message has no {name!r} to continue"
        )
    fields = [name]
    if name in REASONING_FIELDS:  # aliased copies: tag each, whichever the template reads
        fields = [f for f in REASONING_FIELDS if chat[-1].get(f) == final]
    if not any(f in template for f in fields):
        raise ValueError(
            f"continue_final_message is set to {name!r}, but the chat template never reads "
            "that field"
        )
    if isinstance(final, (list, tuple)):
        for block in reversed(final):
            if isinstance(block, dict) and "text" in block:
                final_text = block["text"]
                block["text"] = block["text"] + _CONTINUE_TAG
                return final_text
        raise ValueError(
            "continue_final_message is set but the last message has no text block to continue"
        )
    for f in fields:
        chat[-1][f] = chat[-1][f] + _CONTINUE_TAG
    return final


def _cut_at_tag(text: str, final_text: str) -> str:
    tag = _CONTINUE_TAG.strip()
    if final_text.strip() not in text or tag not in text:
        raise ValueError(
            "continue_final_message is set but the last message does not appear in the "
            "rendered chat: the template changes or drops it, so it cannot be continued"
        )
    at = text.rindex(tag)
    if text[at : at + len(_CONTINUE_TAG)] == _CONTINUE_TAG:
        return text[:at]  # the template kept the message's spacing
    return text[:at].rstrip()  # it trimmed the message, and the tag's space with it


def _template_variables(tokenizer: Any) -> dict[str, Any]:
    """The named special tokens, as ``transformers`` passes them to templates."""
    out = {name: getattr(tokenizer, name, None) for name in _SINGLE_SPECIAL}
    out = {name: value for name, value in out.items() if value is not None}
    out.update(getattr(tokenizer, "model_specific_special_tokens", {}) or {})
    return out


def _is_batch(conversation: Any) -> bool:
    if isinstance(conversation, (list, tuple)) and conversation:
        first = conversation[0]
        return isinstance(first, (list, tuple)) or hasattr(first, "messages")
    return False


def _assistant_mask(offsets: Sequence[tuple[int, int]], spans: list[tuple[int, int]]) -> list[int]:
    """1 for each token whose characters overlap a generation span (spans and tokens in order)."""
    mask = [0] * len(offsets)
    k = 0
    for i, (start, end) in enumerate(offsets):
        while k < len(spans) and start >= spans[k][1]:
            k += 1
        if k == len(spans):
            break
        if end > spans[k][0] and end > start:
            mask[i] = 1
    return mask


def apply_chat_template(
    tokenizer: Any,
    conversation: Any,
    tools: Sequence[Mapping[str, Any]] | None = None,
    documents: Sequence[Mapping[str, Any]] | None = None,
    chat_template: str | None = None,
    add_generation_prompt: bool = False,
    continue_final_message: bool | str = False,
    tokenize: bool = True,
    padding: bool | str = False,
    truncation: bool | str = False,
    max_length: int | None = None,
    return_tensors: str | None = None,
    return_dict: bool = True,
    return_assistant_tokens_mask: bool = False,
    tokenizer_kwargs: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Any:
    """Render a conversation (or a batch of them) with the tokenizer's chat template and
    tokenize it, as ``transformers``' ``tokenizer.apply_chat_template``.

    The template sees the named special tokens (``bos_token``, ``eos_token``, ...) and
    ``kwargs`` (which win). The text is tokenized with ``add_special_tokens=False``: the
    template writes the special tokens itself.

    Args:
        tokenizer: a ptfunc tokenizer; its ``chat_template`` attribute is used unless
            ``chat_template`` is given.
        conversation: a list of messages ``{"role": ..., "content": ...}``, or a list of
            such lists (a batch).
        tools: JSON schemas of callable tools, for templates that support them.
        documents: documents for retrieval-augmented templates.
        chat_template: a template, or the name of one of the tokenizer's templates.
        add_generation_prompt: end with the header of a new assistant turn (for generation).
        continue_final_message: leave the last message open for the model to continue
            (see :func:`render_chat_template`).
        tokenize: False returns the text (a list of texts for a batch).
        padding, truncation, max_length, return_tensors: as in ``batch_encode``
            (``truncation`` is False by default: ``max_length`` alone does not truncate).
        return_dict: True (the default, as in ``transformers`` 5) returns the encoding dict
            (``input_ids``, ``attention_mask``); False only the ids.
        return_assistant_tokens_mask: add ``assistant_masks``, 1 on tokens inside the
            template's ``{% generation %}`` blocks (needs ``return_dict``; the tokenizer
            must give offsets, as :class:`~.tokenizer_json.PreTrainedTokenizerFast` does).
        tokenizer_kwargs: more options for the tokenizer call.
        **kwargs: more template variables (``date_string``, ``enable_thinking``, ...).

    Returns:
        The text, the ids (a list, or a list of lists for a batch), or the encoding dict.

    Raises:
        ValueError: no chat template, an empty conversation, or incompatible options.
        jinja2.exceptions.TemplateError: the template raised (``raise_exception``).
    """
    if not tokenize:
        return_dict = False
    if return_assistant_tokens_mask and not (tokenize and return_dict):
        raise ValueError(
            "return_assistant_tokens_mask=True needs tokenize=True and return_dict=True"
        )
    if continue_final_message and return_assistant_tokens_mask:
        raise ValueError("continue_final_message cannot be used with return_assistant_tokens_mask")
    template = select_chat_template(getattr(tokenizer, "chat_template", None), chat_template, tools)
    if isinstance(conversation, (list, tuple)) and not conversation:
        raise ValueError("cannot apply a chat template to an empty conversation")
    batched = _is_batch(conversation)
    conversations = list(conversation) if batched else [conversation]
    variables = {**_template_variables(tokenizer), **kwargs}
    texts, all_spans = [], []
    for chat in conversations:
        rendered = render_chat_template(
            template,
            chat,
            tools=tools,
            documents=documents,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=continue_final_message,
            return_generation_spans=return_assistant_tokens_mask,
            **variables,
        )
        if return_assistant_tokens_mask:
            rendered, spans = rendered  # type: ignore[misc]
            all_spans.append(spans)
        texts.append(rendered)
    if not tokenize:
        return texts if batched else texts[0]
    options = dict(tokenizer_kwargs or {})
    if return_assistant_tokens_mask:
        options["return_offsets_mapping"] = True
    out = tokenizer.batch_encode(
        texts,
        add_special_tokens=False,
        padding=padding,
        truncation=truncation,
        max_length=max_length,
        **options,
    )
    if return_assistant_tokens_mask:
        offsets = out.pop("offset_mapping")
        out["assistant_masks"] = [
            _assistant_mask(row, spans) for row, spans in zip(offsets, all_spans)
        ]
    if not batched and return_tensors is None:
        out = {key: rows[0] for key, rows in out.items()}
    elif return_tensors is not None:
        out = {key: _encoding.to_tensor(value, key) for key, value in out.items()}
    return out if return_dict else out["input_ids"]
