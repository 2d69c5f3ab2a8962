"""Regenerate every checkpoint fixture under ``tests/data/checkpoints/`` (one entry point).

    python tests/make_checkpoints.py --tf-python /path/to/venv-tf/bin/python

Three generators, each runnable on its own and documented in its docstring:

* ``gen_checkpoints_numpy.py`` (this interpreter: numpy + torch): the OpenAI GPT NumPy
  release and an original XLM ``.pth``;
* ``gen_checkpoints_bundle.py`` (TensorFlow + ``cramjam``): tensor-bundle fixtures of
  the reader (dtypes, partitioned, sharded, TF2 object graph, big-endian, Snappy);
* ``gen_checkpoints_tf.py`` (TensorFlow + torch + ``transformers==4.46.3`` +
  ``pytorch-transformers==1.0.0`` + sentencepiece + safetensors): BERT, GPT-2,
  Transformer-XL and XLNet checkpoints under their original names, with reference
  outputs from the seed's and transformers' TensorFlow loaders.

The TensorFlow environment is for generation only; no test imports TensorFlow. A
set-up that worked (CPU, Python 3.11)::

    python -m venv /tmp/venv-tf
    /tmp/venv-tf/bin/pip install tensorflow-cpu torch==2.13.0 transformers==4.46.3 \\
        pytorch-transformers==1.0.0 sentencepiece safetensors cramjam

Every generator is deterministic (fixed seeds), so re-running leaves the committed
files unchanged unless a generator changed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tf-python",
        help="interpreter of the TensorFlow environment (skips the TF generators if absent)",
    )
    args = parser.parse_args()
    jobs = [(sys.executable, "gen_checkpoints_numpy.py")]
    if args.tf_python:
        jobs += [
            (args.tf_python, "gen_checkpoints_bundle.py"),
            (args.tf_python, "gen_checkpoints_tf.py"),
        ]
    else:
        print("no --tf-python: the TensorFlow fixtures are left as they are", file=sys.stderr)
    for python, script in jobs:
        print(f"== {script} ({python})", flush=True)
        subprocess.run([python, str(HERE / script)], check=True, cwd=HERE.parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
