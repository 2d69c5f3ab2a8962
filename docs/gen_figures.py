"""Draw the documentation's figures (PNG) from ptfunc itself and from recorded numbers.

    python docs/gen_figures.py [--out docs/figures]

* ``head_importance.png``: head importance of a tiny random BERT classifier, computed by
  ``ptfunc.research.bertology.compute_head_stats`` as ``examples/run_bertology.py`` does
  (CPU, no network, about a second).
* ``schedule_<name>.png``: the multiplier of every schedule in ``ptfunc.optim.schedules``
  against the step (pytorch-transformers 1.0's family, and 0.6.2's ``legacy`` names).
* ``performance_cpu.png``, ``performance_cuda.png``: the ratios ``ptfunc / reference``
  recorded in ``docs/performance.md`` (parsed from its tables; nothing is benchmarked here).

``mkdocs build`` calls :func:`generate` from ``docs/hooks.py``, so the site always shows
figures drawn by the code it documents; nothing here is committed.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ptfunc  # noqa: E402
from ptfunc.archs import bert  # noqa: E402
from ptfunc.optim import schedules  # noqa: E402
from ptfunc.research import bertology  # noqa: E402

PERFORMANCE = ROOT / "docs" / "performance.md"
# Same metadata every run, so a figure's bytes change only when its content does.
PNG = {"dpi": 110, "metadata": {"Software": None}}

# 1.0's schedules as built for the figure: (label, schedule) over T_TOTAL steps.
T_TOTAL, WARMUP = 1000, 100
SCHEDULES = {
    "constant": schedules.constant(),
    "warmup_constant": schedules.warmup_constant(WARMUP),
    "warmup_linear": schedules.warmup_linear(WARMUP, T_TOTAL),
    "warmup_cosine": schedules.warmup_cosine(WARMUP, T_TOTAL),
    "warmup_cosine_with_hard_restarts": schedules.warmup_cosine_with_hard_restarts(
        WARMUP, T_TOTAL, cycles=3
    ),
}


def head_importance(out: Path) -> Path:
    """Head importance of a 4-layer, 6-head random BERT on random batches (a heat map)."""
    torch.manual_seed(0)
    config = bert.BertConfig(
        vocab_size=100,
        hidden_size=48,
        num_hidden_layers=4,
        num_attention_heads=6,
        intermediate_size=96,
        num_labels=2,
    )
    model = bert.BertForSequenceClassification(config)
    params = model.init(ptfunc.random.key(0))
    gen = torch.Generator().manual_seed(0)
    batches = [
        {
            "input_ids": torch.randint(1, 100, (8, 24), generator=gen),
            "attention_mask": torch.ones(8, 24, dtype=torch.long),
            "labels": torch.randint(0, 2, (8,), generator=gen),
        }
        for _ in range(3)
    ]
    stats = bertology.compute_head_stats(model, params, batches)
    return bertology.plot_head_importance(
        stats.importance,
        out / "head_importance.png",
        title="head importance (tiny random BERT, normalised)",
    )


def _curve(schedule: schedules.Schedule, steps: int) -> tuple[list[int], list[float]]:
    xs = list(range(steps + 1))
    return xs, [float(schedule(torch.tensor(x))) for x in xs]


def _plot_schedule(path: Path, title: str, curves: dict[str, schedules.Schedule]) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3))
    for label, schedule in curves.items():
        ax.plot(*_curve(schedule, T_TOTAL), label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("lr multiplier")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend(fontsize="small")
    fig.savefig(path, bbox_inches="tight", **PNG)
    plt.close(fig)
    return path


def schedule_plots(out: Path) -> list[Path]:
    """One plot per schedule of 1.0's family, and one per ``legacy`` name of 0.6.2."""
    paths = []
    for name, schedule in SCHEDULES.items():
        args = f"warmup_steps={WARMUP}, t_total={T_TOTAL}" if name != "constant" else ""
        if name == "warmup_cosine_with_hard_restarts":
            args += ", cycles=3"
        path = out / f"schedule_{name}.png"
        paths.append(_plot_schedule(path, f"{name}({args})", {name: schedule}))
    for name in schedules.LEGACY_SCHEDULES:
        schedule = schedules.legacy(name, warmup=0.1, t_total=T_TOTAL)
        title = f'legacy("{name}", warmup=0.1, t_total={T_TOTAL})'
        paths.append(_plot_schedule(out / f"schedule_legacy_{name}.png", title, {name: schedule}))
    return paths


def performance_rows(text: str) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """The ratios of ``docs/performance.md``: the CPU table's bold ratios, and the first
    (float32) number of each single-valued row of the CUDA table."""
    cpu, cuda = [], []
    section = None
    for line in text.splitlines():
        if line.startswith("### CPU"):
            section = cpu
        elif line.startswith("### CUDA"):
            section = cuda
        elif line.startswith("## "):
            section = None
        if section is None or not line.startswith("| "):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if section is cpu:
            m = re.fullmatch(r"\*\*([0-9.]+)\*\*", cells[4]) if len(cells) > 4 else None
            if m:
                cpu.append((cells[0].strip("`"), float(m.group(1))))
        else:
            m = re.match(r"([0-9.]+)(\s|$|\()", cells[1]) if len(cells) > 1 else None
            if m and "/" not in cells[0]:
                cuda.append((cells[0].strip("`"), float(m.group(1))))
    return cpu, cuda


def _plot_ratios(path: Path, title: str, rows: list[tuple[str, float]]) -> Path:
    labels = [r[0] for r in rows][::-1]
    values = [r[1] for r in rows][::-1]
    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.22 * len(rows)))
    colors = ["tab:green" if v <= 1.0 else "tab:red" for v in values]
    # Bars start at 1 (parity), so each shows how far a row is from the reference.
    ax.barh(labels, [v - 1.0 for v in values], left=1.0, color=colors)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("time (or memory) ratio ptfunc / reference, log scale; below 1: ptfunc cheaper")
    ax.set_title(title)
    ax.tick_params(axis="y", labelsize=7)
    fig.savefig(path, bbox_inches="tight", **PNG)
    plt.close(fig)
    return path


def performance_plots(out: Path) -> list[Path]:
    """Bar charts of the recorded ratios (CPU suite; CUDA float32)."""
    cpu, cuda = performance_rows(PERFORMANCE.read_text(encoding="utf-8"))
    if not cpu or not cuda:
        raise ValueError(f"{PERFORMANCE} has no ratio tables under '### CPU' / '### CUDA'")
    return [
        _plot_ratios(out / "performance_cpu.png", "CPU, float32 (docs/performance.md)", cpu),
        _plot_ratios(out / "performance_cuda.png", "H100, float32 (docs/performance.md)", cuda),
    ]


def generate(out: Path) -> list[Path]:
    """Write every figure into ``out`` (created if needed); returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return [head_importance(out), *schedule_plots(out), *performance_plots(out)]


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--out DIR`` (default ``docs/figures``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "figures")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
