"""Peak memory and time of loading a sharded bfloat16 Llama checkpoint (issue 20 point 3).

    python benchmarks/load_llm_memory.py                  # ~2.5 GB checkpoint, minutes
    python benchmarks/load_llm_memory.py --size-gb 13.5   # Llama-2-7B's shapes (32 layers)
    python benchmarks/load_llm_memory.py --check          # exit 1 when ptfunc's peak > 1.1x
    python benchmarks/load_llm_memory.py --quick          # 0.2 GB: a smoke test, seconds

A synthetic checkpoint of random bfloat16 weights is written shard by shard (one tensor in
memory at a time, so a 7B one can be written on a machine smaller than twice its size):
``config.json`` (``torch_dtype: bfloat16``), ``model.safetensors.index.json`` and
``model-0000x-of-0000y.safetensors``, with Llama-2-7B's proportions scaled to the size asked
for. Each side then loads it in a fresh process and reports its peak RSS above the RSS
after imports (the peak is reset through ``/proc/self/clear_refs`` once the imports are
done), both right after the load and after every param has been read once:

* ptfunc: ``llama.LlamaForCausalLM.from_pretrained(dir, dtype="auto")`` (bfloat16, read
  tensor by tensor into the params, no float32 copy);
* peer: ``transformers.LlamaForCausalLM.from_pretrained(dir, dtype=torch.bfloat16)`` (5.x).

Printed: each peak over the checkpoint's size, each load time, and the ratios
ptfunc / transformers. The page cache is warm for both (the checkpoint was just written,
and ptfunc reads it first once to warm it), so the times compare the loaders, not the disk.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

GB = 10**9

_CHILD = r"""
import json, os, sys, time, warnings
warnings.simplefilter("ignore")
import torch
which, path, threads, dtype = sys.argv[1:5]
torch.set_num_threads(int(threads))
dtype = None if dtype == "none" else dtype if dtype == "auto" else getattr(torch, dtype)
if which == "ptfunc":
    from ptfunc.archs import llama
    load = lambda: llama.LlamaForCausalLM.from_pretrained(path, dtype=dtype)[1]
    leaves = lambda params: __import__("ptfunc").tree.leaves(params)
elif which == "transformers":
    import transformers
    transformers.logging.set_verbosity_error()
    load = lambda: transformers.LlamaForCausalLM.from_pretrained(path, dtype=dtype)
    leaves = lambda model: list(model.state_dict().values())
else:
    raise SystemExit(f"unknown loader {which!r}")
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * page
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")
before = rss()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset VmHWM to the current RSS
start = time.perf_counter()
loaded = load()
seconds = time.perf_counter() - start
after_load = peak()
tensors = leaves(loaded)
dtypes = sorted({str(t.dtype) for t in tensors})
total = 0.0
for t in tensors:  # read every page once: lazily mapped params become resident here
    total += float(t.detach().reshape(-1)[:: 4096 // t.element_size()].double().sum())
touched = time.perf_counter() - start
print(json.dumps({"peak": after_load - before, "peak_touched": peak() - before,
                  "seconds": seconds, "seconds_touched": touched, "dtypes": dtypes,
                  "checksum": total}))
"""


def llama_config(size_bytes: int) -> dict[str, Any]:
    """config.json of a Llama with Llama-2-7B's proportions and about ``size_bytes`` of
    bfloat16 weights (13.5 GB gives Llama-2-7B's shapes: width 4096, 32 layers)."""
    widths = ((8 * GB, 4096), (3 * GB // 2, 2048), (GB // 4, 1024), (0, 256))
    hidden = next(width for least, width in widths if size_bytes >= least)
    intermediate = hidden * 11008 // 4096
    vocab = 32000
    per_layer = 2 * (4 * hidden * hidden + 3 * hidden * intermediate + 2 * hidden)
    rest = 2 * (2 * vocab * hidden + hidden)
    layers = max(1, round((size_bytes - rest) / per_layer))
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": max(1, hidden // 128),
        "num_key_value_heads": max(1, hidden // 128),
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    }


def _shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Checkpoint names and shapes of ``LlamaForCausalLM(config)`` (transformers' names)."""
    h, i, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    d = h // config["num_attention_heads"]
    kv = config["num_key_value_heads"] * d
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (v, h)}
    for n in range(config["num_hidden_layers"]):
        p = f"model.layers.{n}."
        shapes.update(
            {
                p + "input_layernorm.weight": (h,),
                p + "self_attn.q_proj.weight": (h, h),
                p + "self_attn.k_proj.weight": (kv, h),
                p + "self_attn.v_proj.weight": (kv, h),
                p + "self_attn.o_proj.weight": (h, h),
                p + "post_attention_layernorm.weight": (h,),
                p + "mlp.gate_proj.weight": (i, h),
                p + "mlp.up_proj.weight": (i, h),
                p + "mlp.down_proj.weight": (h, i),
            }
        )
    shapes["model.norm.weight"] = (h,)
    shapes["lm_head.weight"] = (v, h)
    return shapes


def write_checkpoint(
    directory: str | os.PathLike[str],
    config: dict[str, Any],
    *,
    shard_bytes: int = 2 * GB,
    dtype: str = "bfloat16",
    seed: int = 0,
) -> int:
    """Write a sharded safetensors checkpoint of random weights; returns its weight bytes.

    One tensor is in memory at a time: each is drawn (``normal(0, 0.02)``, norms 1) and
    written straight after the shard's header. ``dtype``: ``"bfloat16"`` or ``"float32"``
    (the file's dtype; config.json's ``torch_dtype`` says the same).
    """
    import torch

    torch_dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}[dtype]
    code, item = {"bfloat16": ("BF16", 2), "float32": ("F32", 4)}[dtype]
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    shards: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    used = 0
    for name, shape in _shapes(config).items():
        nbytes = item * _numel(shape)
        if shards[-1] and used + nbytes > shard_bytes:
            shards.append([])
            used = 0
        shards[-1].append((name, shape))
        used += nbytes
    generator = torch.Generator().manual_seed(seed)
    weight_map: dict[str, str] = {}
    total = 0
    for number, entries in enumerate(shards, 1):
        file = f"model-{number:05d}-of-{len(shards):05d}.safetensors"
        header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
        offset = 0
        for name, shape in entries:
            end = offset + item * _numel(shape)
            header[name] = {"dtype": code, "shape": list(shape), "data_offsets": [offset, end]}
            offset = end
            weight_map[name] = file
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        with open(directory / file, "wb") as out:
            out.write(len(raw).to_bytes(8, "little") + raw)
            for name, shape in entries:
                if name.endswith("norm.weight"):
                    tensor = torch.ones(shape, dtype=torch_dtype)
                else:
                    tensor = torch.empty(shape, dtype=torch_dtype).normal_(
                        0, 0.02, generator=generator
                    )
                out.write(memoryview(tensor.view(torch.uint8).numpy()))
                del tensor
        total += offset
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    (directory / "config.json").write_text(json.dumps({**config, "torch_dtype": dtype}, indent=2))
    return total


def _numel(shape: tuple[int, ...]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


def measure(
    which: str, directory: str | os.PathLike[str], *, dtype: str = "auto", threads: int = 2
) -> dict[str, Any]:
    """Load ``directory`` with ``which`` (``"ptfunc"`` or ``"transformers"``) in a fresh
    process, ``dtype=`` ``"auto"``, ``"none"`` (the default) or a torch dtype's name.

    Returns:
        ``{"peak", "peak_touched"}``: bytes above the RSS after imports, at the end of the
        load and once every param's pages have been read; ``{"seconds",
        "seconds_touched"}`` likewise; the params' ``"dtypes"`` and a ``"checksum"``.
    """
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, which, str(directory), str(threads), dtype],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"loading with {which} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=2.5, help="checkpoint size (1e9 B)")
    parser.add_argument("--shard-gb", type=float, default=2.0, help="largest shard (1e9 B)")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: tmp)")
    parser.add_argument("--no-transformers", action="store_true", help="ptfunc only")
    parser.add_argument("--check", action="store_true", help="exit 1 if ptfunc's peak > 1.1x")
    parser.add_argument("--quick", action="store_true", help="a 0.2 GB checkpoint: smoke test")
    args = parser.parse_args()
    if args.quick:
        args.size_gb, args.shard_gb = 0.2, 0.05

    config = llama_config(int(args.size_gb * GB))
    tmp = None if args.dir is not None else tempfile.mkdtemp(prefix="ptfunc-llm-")
    directory = args.dir if args.dir is not None else Path(tmp) / "checkpoint"
    try:
        size = write_checkpoint(directory, config, shard_bytes=int(args.shard_gb * GB))
        shards = len(list(directory.glob("model-*.safetensors")))
        print(
            f"synthetic Llama: width {config['hidden_size']}, {config['num_hidden_layers']} "
            f"layers, bfloat16, {size / GB:.2f} GB in {shards} shards at {directory}"
        )
        rows = {"ptfunc": measure("ptfunc", directory)}
        rows["ptfunc"] = measure("ptfunc", directory)  # the first run warmed the page cache
        if not args.no_transformers:
            rows["transformers"] = measure("transformers", directory, dtype="bfloat16")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"{'':14}{'peak/size':>10}{'read/size':>11}{'load':>9}{'load+read':>11}  dtypes"
        "   (peak RSS above the RSS after imports; 'read': once every page was read)"
    )
    for name, row in rows.items():
        print(
            f"{name:14}{row['peak'] / size:>10.3f}{row['peak_touched'] / size:>11.3f}"
            f"{row['seconds']:>8.2f}s{row['seconds_touched']:>10.2f}s  "
            f"{','.join(row['dtypes'])}"
        )
    ours = rows["ptfunc"]
    summary: dict[str, Any] = {"size": size, "ptfunc_peak_ratio": ours["peak_touched"] / size}
    if "transformers" in rows:
        peer = rows["transformers"]
        summary["transformers_peak_ratio"] = peer["peak_touched"] / size
        summary["ptfunc_over_transformers"] = ours["peak_touched"] / peer["peak_touched"]
        summary["time_ratio"] = ours["seconds_touched"] / peer["seconds_touched"]
        print(
            f"ratio ptfunc / transformers: peak {summary['ptfunc_over_transformers']:.2f}, "
            f"time (load+read) {summary['time_ratio']:.2f}"
        )
    print(json.dumps(summary))
    if args.check and ours["peak_touched"] > 1.1 * size:
        print(f"FAIL: ptfunc's peak is {ours['peak_touched'] / size:.3f}x the checkpoint's size")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
