"""Saves killed at every file-system step: afterwards a directory loads as the complete
previous save, the complete new one, or a clear error, never a mix; and the next save
removes what the killed one left behind (issue 17, points 1 and 2).

How: the save runs in a forked child (torch is imported once, here) that counts its calls
of ``os.open``, ``os.write``, ``os.fsync``, ``os.replace``, ``os.rename``, ``os.unlink``,
``os.mkdir``, ``os.rmdir``, ``os.chmod``... and SIGKILLs itself at the k-th one (at a write,
after writing half the bytes: a torn write), for k = 1, 2, ... until a save runs to the end.

The oracle is the two saves themselves, compared exactly: the params and config ptfunc's
loaders return, and the bytes another reader would take. ``transformers`` is modelled by its
file rule: config.json is required, then ``model.safetensors``, else the sharded index and
its shards. A tokenizer reader needs its vocabulary and reads the JSON files when present.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
import safetensors.torch
import torch

from ptfunc import _atomic, io, random, tree
from ptfunc.archs import bert
from ptfunc.errors import CheckpointError
from ptfunc.io.convert._common import write_directory
from ptfunc.io.pretrained import pretrained_files, weight_files
from ptfunc.tokenize import BertTokenizer
from ptfunc.train_state import load_train_state, save_train_state

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="kills forked children")

SIZES = dict(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
             intermediate_size=16)  # fmt: skip
# Same shapes, other config: a config of one save beside the weights of the other loads
# without any error, so only the oracle can tell.
OLD = bert.BertModel(bert.BertConfig(**SIZES, layer_norm_eps=1e-12))
NEW = bert.BertModel(bert.BertConfig(**SIZES, layer_norm_eps=1e-6))
NEXT = bert.BertModel(bert.BertConfig(**SIZES, layer_norm_eps=1e-5))
PARAMS = {"old": OLD.init(random.key(0)), "new": NEW.init(random.key(1)),
          "next": NEXT.init(random.key(2))}  # fmt: skip
MODELS = {"old": OLD, "new": NEW, "next": NEXT}

_CALLS = ("open", "write", "fsync", "replace", "rename", "unlink", "remove", "mkdir", "rmdir",
          "chmod", "link", "symlink", "truncate", "ftruncate")  # fmt: skip
_LEFTOVER = re.compile(r"\.ptfunc-(tmp|old)-[0-9a-f]{8}-\d+-|\.ptfunc-saving$")


# -- killing a save ----------------------------------------------------------------------------


def _instrument(kill_at: int) -> None:
    """In the child: the ``kill_at``-th file-system call SIGKILLs the process."""
    count = [0]

    def wrap(name: str) -> None:
        real = getattr(os, name)

        def call(*args, **kwargs):
            count[0] += 1
            if count[0] == kill_at:
                if name == "write":
                    data = bytes(args[1])
                    real(args[0], data[: len(data) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)

        setattr(os, name, call)

    for name in _CALLS:
        if hasattr(os, name):
            wrap(name)


def _killed_at(kill_at: int, save: Callable[[], object]) -> bool:
    """Run ``save`` in a forked child killed at its ``kill_at``-th call; False if it finished."""
    sys.stdout.flush(), sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 3
        try:
            torch.set_num_threads(1)
            _instrument(kill_at)
            save()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True
    assert os.WEXITSTATUS(status) == 0, "the save raised in the child (see its stderr)"
    return False


def _every_kill(prepare, save, check, cleanup, *, at_least: int) -> None:
    """For k = 1, 2, ...: ``prepare()``, kill ``save`` at step k, ``check(killed)``, then
    ``cleanup()`` (a full save in this process, which must leave no leftover). Stops at
    the first k where the save finishes; that save needs at least ``at_least`` steps."""
    for kill_at in range(1, 500):
        prepare()
        killed = _killed_at(kill_at, save)
        check(killed)
        cleanup()
        if not killed:
            assert kill_at > at_least, f"only {kill_at - 1} steps: was the save instrumented?"
            return
    raise AssertionError("the save never finished")


def _leftovers(*directories: Path) -> list[str]:
    return sorted(
        p.name for d in directories if d.is_dir() for p in d.iterdir() if _LEFTOVER.search(p.name)
    )


# -- what readers see ----------------------------------------------------------------------------


def _same(a, b) -> bool:
    la, lb = tree.leaves(a), tree.leaves(b)
    return len(la) == len(lb) and all(torch.equal(x, y) for x, y in zip(la, lb))


def _ptfunc_model(directory: Path, labels=("old", "new")) -> str:
    """Which save ``io.from_pretrained`` returns ("error": a CheckpointError); fails on a mix."""
    try:
        model, params = io.from_pretrained(directory, bert.BertModel, strict=True)
    except CheckpointError:
        return "error"
    for label in labels:
        if model == MODELS[label] and _same(params, PARAMS[label]):
            return label
    pytest.fail(f"from_pretrained({directory}) gave a mix: not any one save's config + weights")


def _weights_read_by_transformers(directory: Path) -> list[str] | None:
    if (directory / "model.safetensors").is_file():
        return ["model.safetensors"]
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [index.name, *shards] if all((directory / s).is_file() for s in shards) else None
    return None


def _file_reader(directory: Path, saves: dict[str, dict[str, bytes]], required, optional) -> str:
    """Which save a reader sees that needs ``required`` and reads ``optional`` when present:
    "error" when a required file is missing; fails when the files come from several saves
    or a file of the save it sees is missing."""
    if not all((directory / name).is_file() for name in required):
        return "error"
    seen = {n: (directory / n).read_bytes() for n in [*required, *optional]
            if (directory / n).is_file()}  # fmt: skip
    for label, files in saves.items():
        if seen == {n: files[n] for n in [*required, *optional] if n in files}:
            return label
    pytest.fail(f"a reader of {directory} would see a mix of saves: {sorted(seen)}")


def _transformers_model(directory: Path, saves: dict[str, dict[str, bytes]]) -> str:
    if not (directory / "config.json").is_file():
        return "error"
    weights = _weights_read_by_transformers(directory)
    if weights is None:
        return "error"
    return _file_reader(directory, saves, ["config.json", *weights], [])


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


# -- model directories ---------------------------------------------------------------------------


def _model_files(label: str) -> dict[str, bytes]:
    return {n: d.encode() if isinstance(d, str) else d
            for n, d in pretrained_files(MODELS[label], PARAMS[label]).items()}  # fmt: skip


def _sharded_files(label: str) -> dict[str, bytes]:
    """The transformers layout of a sharded save: config, index, two shards."""
    files = _model_files(label)
    state = safetensors.torch.load(files.pop("model.safetensors"))
    names = sorted(state)
    halves = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2 :]}  # fmt: skip
    index = {"metadata": {}, "weight_map": {n: s for s, part in halves.items() for n in part}}
    files["model.safetensors.index.json"] = json.dumps(index).encode()
    for shard, part in halves.items():
        files[shard] = safetensors.torch.save({n: state[n] for n in part}, {"format": "pt"})
    return files


def _put(directory: Path, files: dict[str, bytes]) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    for name, data in files.items():
        (directory / name).write_bytes(data)


def _check_model_dir(directory: Path, saves: dict[str, dict[str, bytes]], seen: set) -> None:
    ptfunc_sees = _ptfunc_model(directory)
    transformers_sees = _transformers_model(directory, saves)
    seen.add((ptfunc_sees, transformers_sees))
    if ptfunc_sees != "error":  # ptfunc loads only what everyone else would read too
        assert transformers_sees == ptfunc_sees


def _cleanup_model_dir(directory: Path) -> None:
    io.save_pretrained(directory, NEXT, PARAMS["next"])
    assert _leftovers(directory, directory.parent) == []
    assert sorted(os.listdir(directory)) == ["config.json", "model.safetensors", "notes.txt"]
    assert sorted(os.listdir(directory.parent)) == ["README.md", "model"]
    assert _ptfunc_model(directory, labels=("next",)) == "next"


@pytest.mark.parametrize("layout", ["single", "sharded"])
def test_save_pretrained_killed_at_every_step_over_a_previous_save(tmp_path, layout):
    directory = tmp_path / "model"
    previous = _model_files("old") if layout == "single" else _sharded_files("old")
    saves = {"old": previous, "new": _model_files("new")}
    (directory.parent / "README.md").write_text("the user's")
    seen: set = set()
    left_behind = []

    def check(killed):
        _check_model_dir(directory, saves, seen)
        left_behind.append(_leftovers(directory))
        assert (tmp_path / "README.md").read_text() == "the user's"
        if not killed:  # the superseded shards went too; the user's file stayed
            assert _files(directory) == {**saves["new"], "notes.txt": b"mine"}

    def prepare():
        _put(directory, previous)
        (directory / "notes.txt").write_text("mine")

    _every_kill(
        prepare,
        lambda: io.save_pretrained(directory, NEW, PARAMS["new"]),
        check,
        lambda: (_cleanup_model_dir(directory), _check_notes(directory)),
        at_least=10,
    )
    assert ("old", "old") in seen and ("new", "new") in seen
    assert any(left_behind), "no kill left anything behind: the cleanup was not tested"


def _check_notes(directory: Path) -> None:
    assert (directory / "notes.txt").read_text() == "mine"  # the user's file is kept


def test_save_pretrained_into_a_new_directory_killed_at_every_step(tmp_path):
    directory = tmp_path / "out" / "model"
    saves = {"new": _model_files("new")}
    left_behind = []

    def check(killed):
        left_behind.append(_leftovers(directory.parent))
        if not directory.exists():
            assert killed
            return
        assert _files(directory) == saves["new"]  # all there, or no directory at all
        assert _ptfunc_model(directory, labels=("new",)) == "new"

    def cleanup():
        shutil.rmtree(directory, ignore_errors=True)
        io.save_pretrained(directory, NEW, PARAMS["new"])
        assert _leftovers(directory, directory.parent) == []
        assert os.listdir(directory.parent) == ["model"]

    _every_kill(
        lambda: shutil.rmtree(directory, ignore_errors=True),
        lambda: io.save_pretrained(directory, NEW, PARAMS["new"]),
        check,
        cleanup,
        at_least=5,
    )
    assert any(left_behind)


# -- tokenizers ---------------------------------------------------------------------------------

TOKENIZER_FILES = ["vocab.txt", "special_tokens_map.json", "added_tokens.json",
                   "tokenizer_config.json"]  # fmt: skip


def _tokenizer(label: str) -> BertTokenizer:
    words = {"old": ["hello", "world"], "new": ["hello", "there", "world"], "next": ["x"]}[label]
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = BertTokenizer({w: i for i, w in enumerate(specials + words)}, do_lower_case=False)
    tok.add_tokens([f"<{label}>"])
    return tok


def _tokenizer_files(label: str, tmp_path: Path) -> dict[str, bytes]:
    out = tmp_path / f"tok-{label}"
    _tokenizer(label).save_pretrained(out)
    files = _files(out)
    assert sorted(files) == sorted(TOKENIZER_FILES)
    return {name: files[name] for name in TOKENIZER_FILES}


TOKENIZER_STATE = ("vocab", "added_tokens_encoder", "special_tokens_map")


def _ptfunc_tokenizer(directory: Path, labels=("old", "new")) -> str:
    """Which tokenizer ``BertTokenizer.from_pretrained`` returns; fails on a mix."""
    try:
        tok = BertTokenizer.from_pretrained(directory)
    except (CheckpointError, FileNotFoundError):  # the vocabulary is missing
        return "error"
    for label in labels:
        ref = _tokenizer(label)
        same = [getattr(tok, a) == getattr(ref, a) for a in TOKENIZER_STATE]
        if all(same) and tok.tokenize("hello <new> there") == ref.tokenize("hello <new> there"):
            return label
    pytest.fail(f"BertTokenizer.from_pretrained({directory}) gave a mix of two saves")


def test_tokenizer_save_pretrained_killed_at_every_step(tmp_path):
    directory = tmp_path / "tok"
    saves = {label: _tokenizer_files(label, tmp_path) for label in ("old", "new")}
    seen: set = set()

    def check(killed):
        ptfunc_sees = _ptfunc_tokenizer(directory)
        files_seen = _file_reader(directory, saves, ["vocab.txt"], TOKENIZER_FILES[1:])
        if ptfunc_sees != "error":  # an interrupted commit is reported (CheckpointError)
            assert ptfunc_sees == files_seen
        seen.add(ptfunc_sees)
        if not killed:
            assert ptfunc_sees == "new"

    def cleanup():
        _tokenizer("next").save_pretrained(directory)
        assert _leftovers(directory, directory.parent) == []
        assert sorted(os.listdir(directory)) == sorted(TOKENIZER_FILES)
        assert _ptfunc_tokenizer(directory, labels=("next",)) == "next"

    _every_kill(
        lambda: _put(directory, saves["old"]),
        lambda: _tokenizer("new").save_pretrained(directory),
        check,
        cleanup,
        at_least=12,
    )
    assert {"old", "error", "new"} <= seen


# -- converters' output --------------------------------------------------------------------------


def test_converter_output_killed_at_every_step(tmp_path):
    """write_directory, which every converter ends with: config, weights, then tokenizer
    files, into an existing output directory and into a new one."""
    saves = {label: {**_model_files(label), **_tokenizer_files(label, tmp_path)}
             for label in ("old", "new")}  # fmt: skip
    directory = tmp_path / "converted"
    seen: set = set()

    def check(killed):
        model = _ptfunc_model(directory)
        tok = _ptfunc_tokenizer(directory)
        assert model == _transformers_model(directory, saves) or model == "error"
        assert tok == _file_reader(directory, saves, ["vocab.txt"], TOKENIZER_FILES[1:])
        seen.add((model, tok))
        if "error" not in (model, tok):
            assert model == tok  # the model and its tokenizer come from one conversion
        if not killed:
            assert _files(directory) == saves["new"]

    def cleanup():
        write_directory(directory, saves["old"])
        assert _leftovers(directory, directory.parent) == []
        assert sorted(os.listdir(directory)) == sorted(saves["old"])

    _every_kill(
        lambda: _put(directory, saves["old"]),
        lambda: write_directory(directory, saves["new"]),
        check,
        cleanup,
        at_least=20,
    )
    assert ("old", "old") in seen and ("new", "new") in seen

    fresh = tmp_path / "fresh"

    def check_fresh(killed):
        if fresh.exists():
            assert _files(fresh) == saves["new"]
        else:
            assert killed

    def cleanup_fresh():
        shutil.rmtree(fresh, ignore_errors=True)
        write_directory(fresh, saves["new"])
        assert _leftovers(fresh, tmp_path) == []

    _every_kill(
        lambda: shutil.rmtree(fresh, ignore_errors=True),
        lambda: write_directory(fresh, saves["new"]),
        check_fresh,
        cleanup_fresh,
        at_least=5,
    )


# -- training checkpoints ------------------------------------------------------------------------


def test_train_state_save_killed_at_every_step(tmp_path):
    from ptfunc import optim

    opt = optim.adamw_torch(1e-3)
    params = {label: PARAMS[label] for label in ("old", "new")}
    path = tmp_path / "checkpoints" / "step.safetensors"
    path.parent.mkdir()

    def save(label, step):
        p = params[label]
        save_train_state(path, p, opt.init(p), step=step, key=random.key(step))

    def check(killed):
        state = load_train_state(path, params["old"], opt.init(params["old"]))
        label = {1: "old", 2: "new"}[state.step]
        assert _same(state.params, params[label]) and torch.equal(state.key, random.key(state.step))

    def cleanup():
        save("old", 1)  # into the same folder: removes what the killed save left
        assert _leftovers(path.parent) == [] and os.listdir(path.parent) == [path.name]

    _every_kill(lambda: save("old", 1), lambda: save("new", 2), check, cleanup, at_least=3)


# -- leftovers: recognised, removed when stale, never loaded --------------------------------------


def _dead_pid() -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_leftovers_are_never_loaded_and_only_stale_ones_are_removed(tmp_path):
    directory = tmp_path / "model"
    _put(directory, _model_files("old"))
    here, elsewhere = _atomic._HOST, "0badf00d" if _atomic._HOST != "0badf00d" else "0badf00e"
    dead, alive, me = _dead_pid(), os.getppid(), os.getpid()
    new = _model_files("new")
    stale = {  # the new files under the names a killed save would have left, and others
        f".config.json.ptfunc-tmp-{here}-{dead}-0123456789ab": new["config.json"],
        f".model.safetensors.ptfunc-tmp-{here}-{dead}-0123456789ab": new["model.safetensors"],
        f".model.safetensors.ptfunc-old-{here}-{me}-00000000000a": b"this process, but no save",
        f".merges.txt.ptfunc-tmp-{here}-{alive}-00000000000c": b"a live pid, but two days old",
        f".merges.txt.ptfunc-tmp-{elsewhere}-{alive}-00000000000d": b"another machine's, old",
    }
    kept = {
        f".vocab.txt.ptfunc-tmp-{here}-{alive}-00000000000b": b"a live save's",
        f".vocab.txt.ptfunc-tmp-{elsewhere}-{dead}-00000000000e": b"a save on another machine",
        ".notes.ptfunc-tmp-mine": b"the user's, not a leftover",
    }
    for name, data in {**stale, **kept}.items():
        (directory / name).write_bytes(data)
    two_days_ago = time.time() - 2 * 86400
    for name in list(stale)[-2:]:
        os.utime(directory / name, (two_days_ago, two_days_ago))
    staging = tmp_path / f".model.ptfunc-tmp-{here}-{dead}-0123456789ab"
    staging.mkdir()
    (staging / "config.json").write_bytes(new["config.json"])

    assert _ptfunc_model(directory) == "old"  # the loader never picks them up
    assert weight_files(directory) == [directory / "model.safetensors"]
    io.save_pretrained(directory, NEW, PARAMS["new"])
    assert _ptfunc_model(directory) == "new"
    assert sorted(os.listdir(directory)) == sorted(["config.json", "model.safetensors", *kept])
    assert not staging.exists()


def test_interrupted_commit_is_a_clear_checkpoint_error(tmp_path):
    """Killed between the renames of a commit: ptfunc names the save and the files kept."""
    directory = tmp_path / "model"
    io.save_pretrained(directory, OLD, PARAMS["old"])
    for kill_at in range(1, 100):
        if not _killed_at(kill_at, lambda: io.save_pretrained(directory, NEW, PARAMS["new"])):
            pytest.fail("no kill point left the commit half-done")
        if not (directory / "config.json").exists():
            break
    with pytest.raises(CheckpointError, match=r"was interrupted .*config.json.*Save again"):
        io.from_pretrained(directory, bert.BertModel)
    io.save_pretrained(directory, NEW, PARAMS["new"])
    assert _ptfunc_model(directory) == "new" and _leftovers(directory, tmp_path) == []


def test_an_error_in_the_middle_of_a_commit_puts_the_previous_files_back(tmp_path, monkeypatch):
    """Not a kill but an exception (a rename refused half-way): the previous save is restored."""
    directory = tmp_path / "model"
    io.save_pretrained(directory, OLD, PARAMS["old"])
    before = _files(directory)
    real = os.replace
    for fail_at in range(1, 10):
        calls = [0]

        def replace(src, dst, fail_at=fail_at, calls=calls):
            calls[0] += 1
            if calls[0] == fail_at:
                raise OSError("refused")
            return real(src, dst)

        monkeypatch.setattr(_atomic.os, "replace", replace)
        try:
            io.save_pretrained(directory, NEW, PARAMS["new"])
        except OSError:
            assert _files(directory) == before and _leftovers(directory, tmp_path) == []
            continue
        finally:
            monkeypatch.setattr(_atomic.os, "replace", real)
        assert fail_at > 4  # marker, two files aside, two in: all were refused once
        assert _ptfunc_model(directory) == "new"
        return
    pytest.fail("the save never finished")
