"""Figure 5 (average NLP score against parameters) and Figure 6 (human ratings per model)."""

from __future__ import annotations

from pathlib import Path

from lamini_lm.evaluation import paper

# Figure 5's series: the LaMini models of Tables 9-13, grouped by architecture as in the paper
FAMILIES = {9: "LaMini-T5", 10: "LaMini-Flan-T5", 11: "LaMini-Neo", 12: "LaMini-Cerebras", 13: "LaMini-GPT"}
# encoder-decoder in blues, decoder-only in reds, as the figure contrasts the two
COLORS = {"LaMini-T5": "#1f77b4", "LaMini-Flan-T5": "#17becf", "LaMini-Neo": "#d62728", "LaMini-Cerebras": "#ff7f0e",
          "LaMini-GPT": "#8c564b"}
RATINGS = ("A", "B", "C", "D")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure5(tables, results, by_model, out: Path) -> list[Path]:
    """Paper points as a line per family (encoder-decoder: circles, decoder-only: squares), LLaMA-7B and
    Alpaca-7B as horizontal dashed lines, and each of our results as a star at its parameter count."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for t, family in FAMILIES.items():
        ms = sorted((m for m in tables.get(t, []) if m.name.startswith(family + "-")), key=lambda m: m.n_params)
        if ms:
            ax.plot([m.n_params for m in ms], [m.scores[paper.AVERAGE] for m in ms],
                    marker="o" if ms[0].encoder_decoder else "s", color=COLORS[family],
                    label=f"{family} ({'enc-dec' if ms[0].encoder_decoder else 'dec-only'}, paper)")
    for name, color in (("llama-7b", "grey"), ("alpaca-7b", "black")):
        m = next((m for m in tables.get(4, []) if m.name == name), None)
        if m:
            ax.axhline(m.scores[paper.AVERAGE], linestyle="--", color=color, label=f"{name} (paper)")
    for r in results:
        if r.params and r.scores:
            avg = paper.micro_average(r.scores)
            n = len(r.scores)
            ax.scatter([r.params], [avg], marker="*", s=160, zorder=5,
                       color="tab:blue" if r.encoder_decoder else "tab:red", edgecolor="black",
                       label=f"ours: {r.label}" + ("" if n == 15 else f" ({n}/15 tasks)"))
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("average score over the NLP tasks (%)")
    ax.set_title("Figure 5: encoder-decoder vs decoder-only")
    ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150)
    fig.savefig(out.with_suffix(".pdf"))
    plt.close(fig)
    return [out, out.with_suffix(".pdf")]


def figure6(counts: dict[str, dict[str, int]], out: Path, rater: str = "human") -> list[Path]:
    """Stacked horizontal bars: the share of Rate-A..D responses per model (the paper's Figure 6)."""
    plt = _plt()
    models = list(counts)
    fig, ax = plt.subplots(figsize=(6.4, 0.5 * len(models) + 1.5))
    left = [0.0] * len(models)
    colors = {"A": "#2ca02c", "B": "#98df8a", "C": "#ffbb78", "D": "#d62728"}
    for rate in RATINGS:
        share = [counts[m].get(rate, 0) / max(1, sum(counts[m].values())) for m in models]
        ax.barh(models, share, left=left, color=colors[rate], label=f"Rate-{rate}")
        left = [a + b for a, b in zip(left, share)]
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of responses")
    ax.set_title(f"Figure 6: {rater} evaluation on user-oriented instructions")
    ax.legend(ncol=4, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.35))
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150)
    plt.close(fig)
    return [out]
