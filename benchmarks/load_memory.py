"""Peak memory and time of loading a checkpoint into a model with a new head.

    python benchmarks/load_memory.py [--layers 6] [--hidden 768]

A ``BertModel`` checkpoint (``model.safetensors``, saved by ``transformers``) is loaded
into ``BertForSequenceClassification``, whose classifier is missing from the file and
must be initialised. Each side runs in a fresh process and reports its peak RSS above
the RSS after imports:

* ptfunc: ``BertForSequenceClassification.from_pretrained`` (only the missing classifier
  is initialised; issue 17 point 8);
* peer: ``transformers.BertForSequenceClassification.from_pretrained`` (5.x).

Printed: both peaks and times, and the ratios ptfunc / transformers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = r"""
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
import torch
which, path = sys.argv[1], sys.argv[2]
if which == "ptfunc":
    from ptfunc.archs import bert
    load = lambda: bert.BertForSequenceClassification.from_pretrained(path)
else:
    import transformers
    transformers.logging.set_verbosity_error()
    load = lambda: transformers.BertForSequenceClassification.from_pretrained(path)
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
before = rss()
start = time.perf_counter()
loaded = load()
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"peak": peak - before, "seconds": seconds}))
"""


def _measure(which: str, path: Path, repeats: int) -> dict[str, float]:
    runs = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, which, str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {key: sorted(r[key] for r in runs)[len(runs) // 2] for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per side")
    args = parser.parse_args()

    import torch
    import transformers

    config = transformers.BertConfig(
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=max(1, args.hidden // 64),
        intermediate_size=4 * args.hidden,
    )
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        transformers.BertModel(config).save_pretrained(tmp)
        size = (Path(tmp) / "model.safetensors").stat().st_size
        ours = _measure("ptfunc", Path(tmp), args.repeats)
        peer = _measure("transformers", Path(tmp), args.repeats)
    mib = 2**20
    print(
        f"BertModel checkpoint ({args.layers} layers, width {args.hidden}, "
        f"{size / mib:.0f} MiB) -> ForSequenceClassification; median of {args.repeats}"
    )
    print(f"{'':14}{'peak RSS':>12}{'time':>10}")
    for name, row in (("ptfunc", ours), ("transformers", peer)):
        print(f"{name:14}{row['peak'] / mib:>9.0f} MiB{row['seconds']:>9.2f}s")
    print(
        f"ratio ptfunc / transformers: peak {ours['peak'] / peer['peak']:.2f}, "
        f"time {ours['seconds'] / peer['seconds']:.2f}"
    )
    print(json.dumps({"peak_ratio": ours["peak"] / peer["peak"]}))


if __name__ == "__main__":
    main()
