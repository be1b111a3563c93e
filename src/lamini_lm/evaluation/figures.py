"""Figure 5 (average NLP score against parameters) and Figure 6 (human ratings per model)."""

from __future__ import annotations

from pathlib import Path

# the object-oriented API: no pyplot state, no GUI backend to choose, nothing to close
from matplotlib.figure import Figure

from lamini_lm import rating
from lamini_lm.evaluation import paper
from lamini_lm.files import save_figure

# Figure 5's series: the LaMini models of Tables 9-13 (table -> name prefix, architecture, colour): the figure
# contrasts the two architectures, encoder-decoder in blues (circles), decoder-only in reds (squares)
SERIES = {9: ("LaMini-T5", "encoder-decoder", "#1f77b4"), 10: ("LaMini-Flan-T5", "encoder-decoder", "#17becf"),
          11: ("LaMini-Neo", "decoder-only", "#d62728"), 12: ("LaMini-Cerebras", "decoder-only", "#ff7f0e"),
          13: ("LaMini-GPT", "decoder-only", "#8c564b")}
MARKERS = {"encoder-decoder": "o", "decoder-only": "s"}
OURS = {"encoder-decoder": "tab:blue", "decoder-only": "tab:red"}


def figure5(tables, results, by_model, out: Path) -> list[Path]:
    """Paper points as a line per family (encoder-decoder: circles, decoder-only: squares), LLaMA-7B and
    Alpaca-7B as horizontal dashed lines, and each of our results as a star at its parameter count."""
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.subplots()
    for t, (prefix, arch, color) in SERIES.items():
        ms = sorted((m for m in tables.get(t, []) if m.name.startswith(prefix + "-")), key=lambda m: m.n_params)
        if ms:
            ax.plot([m.n_params for m in ms], [m.scores[paper.AVERAGE] for m in ms], marker=MARKERS[arch],
                    color=color, label=f"{prefix} ({arch}, paper)")
    for name, color in (("llama-7b", "grey"), ("alpaca-7b", "black")):
        m = next((m for m in tables.get(4, []) if m.name == name), None)
        if m:
            ax.axhline(m.scores[paper.AVERAGE], linestyle="--", color=color, label=f"{name} (paper)")
    for r in results:
        if r.params and r.scores:
            avg = paper.micro_average(r.scores)
            n = len(r.scores)
            ax.scatter([r.params], [avg], marker="*", s=160, zorder=5,
                       color=OURS.get(r.architecture, "tab:gray"), edgecolor="black",
                       label=f"ours: {r.label}" + ("" if n == 15 else f" ({n}/15 tasks)"))
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("average score over the NLP tasks (%)")
    ax.set_title("Figure 5: encoder-decoder vs decoder-only")
    ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out, dpi=150)
    save_figure(fig, out.with_suffix(".pdf"))
    return [out, out.with_suffix(".pdf")]


def figure6(counts: dict[str, dict[str, int]], out: Path, rater: str = "human") -> list[Path]:
    """Stacked horizontal bars: the share of Rate-A..D responses per model (the paper's Figure 6)."""
    models = list(counts)
    fig = Figure(figsize=(6.4, 0.5 * len(models) + 1.9))
    ax = fig.subplots()
    left = [0.0] * len(models)
    for rate in rating.LEVELS:
        share = [counts[m].get(rate, 0) / max(1, sum(counts[m].values())) for m in models]
        ax.barh(models, share, left=left, color=rating.COLOURS[rate], label=f"Rate-{rate}")
        left = [a + b for a, b in zip(left, share)]
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of responses")
    ax.set_title(f"Figure 6: {rater} evaluation on user-oriented instructions")
    fig.legend(*ax.get_legend_handles_labels(), ncol=4, fontsize=7, loc="lower center")
    fig.tight_layout(rect=(0, 0.12, 1, 1))  # room for the legend under the axis label
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out, dpi=150)
    return [out]
