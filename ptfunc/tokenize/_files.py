"""File helpers of the tokenizers: atomic writes, and reading the files of a saved tokenizer.

A saved tokenizer directory holds the vocabulary files plus, optionally, the JSON files
written by pytorch-transformers 1.0, today's Hugging Face ``transformers`` or ptfunc;
:func:`read_saved_config` accepts all three spellings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from .._atomic import write_files_atomically

__all__ = [
    "ADDED_TOKENS_FILE",
    "SPECIAL_TOKENS_MAP_FILE",
    "TOKENIZER_CONFIG_FILE",
    "find_vocab_files",
    "make_dir",
    "not_utf8",
    "read_json",
    "read_text",
    "read_saved_config",
    "token_content",
    "write_files_atomically",
]

SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
ADDED_TOKENS_FILE = "added_tokens.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"


def not_utf8(path: str | os.PathLike[str], what: str, err: UnicodeDecodeError) -> ValueError:
    """The ``ValueError`` for a file that is not valid UTF-8: it names the file and the
    first bad line and byte (found by rereading the file; this is the error path only).

    Args:
        path: the file.
        what: a few words naming the file's role ("vocabulary file", "merges file").
        err: the error the decoder raised.
    """
    where = ""
    try:
        with open(path, "rb") as handle:
            offset = 0
            for number, raw in enumerate(handle, 1):  # b"\n" never ends a UTF-8 sequence
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as bad:
                    where = f" (line {number}, byte {offset + bad.start}: {bad.reason})"
                    break
                offset += len(raw)
    except OSError:
        pass
    if not where:
        where = f" ({err.reason})"
    return ValueError(
        f"{what} {os.fspath(path)} is not valid UTF-8{where}; tokenizer files are UTF-8 text"
    )


def read_text(path: str | os.PathLike[str], what: str) -> str:
    """The content of a UTF-8 text file (universal newlines: ``\r\n`` reads as ``\n``).

    Raises:
        ValueError: the file is not valid UTF-8 (see :func:`not_utf8`).
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except UnicodeDecodeError as err:
        raise not_utf8(path, what, err) from None


def read_json(path: Path, what: str) -> Any:
    """Read a UTF-8 JSON file.

    Args:
        path: the file.
        what: a few words naming the file's role, for the error message.

    Returns:
        The decoded JSON value.

    Raises:
        ValueError: the file is not valid UTF-8 JSON (truncated or corrupt).
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except UnicodeDecodeError as err:
        raise not_utf8(path, what, err) from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} {path} is not valid UTF-8 JSON: {err}") from err


def token_content(value: Any, name: str) -> str | None:
    """A token given as str, None, or a Hugging Face ``AddedToken`` (object or dict
    ``{"content": ...}``); only its text is kept.

    Raises:
        TypeError: anything else.
    """
    if isinstance(value, Mapping) and "content" in value:
        value = value["content"]
    elif isinstance(getattr(value, "content", None), str):
        value = value.content
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"{name} must be a str (or None); got {type(value).__name__}: {value!r}")


def make_dir(path: str | os.PathLike[str]) -> Path:
    """Create a directory (and its parents) if missing.

    Raises:
        NotADirectoryError: ``path`` is an existing file.
    """
    directory = Path(os.fspath(path))
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"cannot save a tokenizer into {directory}: it is a file")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def find_vocab_files(
    owner: str,
    vocab_files_names: Mapping[str, str],
    optional: Collection[str],
    path: str | os.PathLike[str],
    given: Collection[str],
) -> tuple[dict[str, str], Path | None]:
    """Locate the vocabulary files of a saved tokenizer.

    Args:
        owner: class name, for messages.
        vocab_files_names: constructor argument -> file name.
        optional: file names that may be absent.
        path: a directory, or (for one-file vocabularies) the vocabulary file itself.
        given: constructor arguments passed explicitly (their files are not needed).

    Returns:
        ``(argument -> file path, directory or None when path is a file)``.

    Raises:
        FileNotFoundError: no such path, or a required file is missing; the message
            names the expected files.
    """
    path = Path(os.fspath(path))
    expected = ", ".join(vocab_files_names.values())
    if path.is_dir():
        files: dict[str, str] = {}
        missing = []
        for arg, name in vocab_files_names.items():
            if (path / name).is_file():
                files[arg] = str(path / name)
            elif arg not in given and name not in optional:
                missing.append(name)
        if missing:
            raise FileNotFoundError(
                f"{owner}.from_pretrained: directory {path} has no {', '.join(missing)} "
                f"(expected files: {expected})"
            )
        return files, path
    if path.is_file():
        if len(vocab_files_names) != 1:
            raise ValueError(
                f"{owner}.from_pretrained needs a directory holding {expected}; got the file {path}"
            )
        return {next(iter(vocab_files_names)): str(path)}, None
    raise FileNotFoundError(
        f"{owner}.from_pretrained: no directory or file at {path} (expected a directory "
        f"holding {expected}, a 1.0 shortcut name or a Hub repo id 'org/name')"
    )


def read_saved_config(
    directory: Path, accepted: Collection[str]
) -> tuple[dict[str, Any], dict[str, int]]:
    """Constructor arguments and added tokens from the JSON files of a saved tokenizer.

    Reads ``tokenizer_config.json`` then ``special_tokens_map.json`` (later wins), keeping
    the keys in ``accepted`` (``extra_special_tokens`` is read as
    ``additional_special_tokens``; ``model_max_length`` wins over ``max_len``), and the
    added tokens of ``added_tokens.json`` (``{token: id}``, or 1.0's ``{id: token}``) and
    of Hugging Face's ``added_tokens_decoder``.

    Args:
        directory: the saved tokenizer.
        accepted: constructor argument names.

    Returns:
        ``(constructor arguments, added token -> id)``.

    Raises:
        ValueError: a file is not valid JSON, not an object, or holds a non-integer id.
    """
    config: dict[str, Any] = {}
    added: dict[str, int] = {}
    for name in (TOKENIZER_CONFIG_FILE, SPECIAL_TOKENS_MAP_FILE):
        file = directory / name
        if not file.is_file():
            continue
        for key, value in _read_object(file, name).items():
            if key == "extra_special_tokens":
                key = "additional_special_tokens"
            if key == "added_tokens_decoder" and isinstance(value, dict):
                for index, entry in value.items():
                    token = token_content(entry, f"{file}: added_tokens_decoder[{index}]")
                    if token is not None:
                        added[token] = _json_id(index, file)
            elif key in accepted:
                config[key] = value
    if "max_len" in config and "model_max_length" in config:
        config.pop("max_len")
    file = directory / ADDED_TOKENS_FILE
    if file.is_file():
        for key, value in _read_object(file, ADDED_TOKENS_FILE).items():
            if isinstance(value, str) and key.isdigit():
                added[value] = int(key)  # pytorch-transformers 1.0 wrote {id: token}
            else:
                added[key] = _json_id(value, file)
    return config, added


def _read_object(file: Path, name: str) -> dict[str, Any]:
    data = read_json(file, name)
    if not isinstance(data, dict):
        raise ValueError(f"{file} must hold a JSON object; got {type(data).__name__}")
    return data


def _json_id(value: Any, file: Path) -> int:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{file}: token ids must be integers; got {value!r}")
    return value
