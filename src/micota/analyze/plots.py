"""PNG figures for the report (matplotlib, Agg backend): lengths, accuracy vs length, BPC, reflection.

Every figure has labelled axes with units, a title and a legend or colour bar, so that
the plots read without the code. Functions take plain data (what
:mod:`micota.analyze.report` gathers from results files) and return the written path.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from micota.analyze.tables import BENCHMARK_LABELS, Results, benchmark_columns

_MARKERS = "osD^v<>Pp*hX"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=130, bbox_inches="tight")  # keeps legends placed outside the axes
    _pyplot().close(fig)
    return path


def plot_length_distributions(lengths: Mapping[str, Mapping[str, Sequence[int]]], path: Path,
                              title: str = "Response length distributions") -> Path:
    """Box plots of response tokens per model, one panel per benchmark (MiCoTA Figures 2–3).

    ``lengths`` maps model -> benchmark -> response token counts. Means are shown as diamonds.
    """
    plt = _pyplot()
    benches = benchmark_columns({m: {b: {} for b in per} for m, per in lengths.items()})
    models = list(lengths)
    cols = min(3, len(benches))
    rows = math.ceil(len(benches) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.0 + cols * max(3.0, 0.9 * len(models)), 3.6 * rows),
                             squeeze=False, sharey=True)
    for ax, bench in zip(axes.flat, benches):
        present = [m for m in models if lengths[m].get(bench)]  # a model not run on a benchmark gets no box
        ax.boxplot([list(lengths[m][bench]) for m in present], showmeans=True, widths=0.6,
                   meanprops={"marker": "D", "markerfacecolor": "white"})
        ax.set_xticks(range(1, len(present) + 1), [f"{m}\n(n={len(lengths[m][bench])})" for m in present],
                      rotation=30 if len(present) > 3 else 0, ha="right" if len(present) > 3 else "center", fontsize=8)
        ax.set_title(BENCHMARK_LABELS.get(bench, bench))
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("response length (tokens)")
    for ax in list(axes.flat)[len(benches):]:
        ax.set_visible(False)
    all_values = [v for per in lengths.values() for vs in per.values() for v in vs if v > 0]
    if all_values and max(all_values) / max(1, min(all_values)) > 50:
        axes[0, 0].set_yscale("log")
    fig.suptitle(f"{title} (box = quartiles, whiskers = 1.5 IQR, ◇ = mean)")
    return _save(fig, path)


def plot_accuracy_vs_length(results: Results, path: Path, mode: str = "robust") -> Path:
    """Accuracy (%) against mean response tokens: colour = model, marker = benchmark."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    benches = benchmark_columns(results)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (model, per) in enumerate(results.items()):
        size = max(24.0, 110 * 0.85**i)  # later models drawn smaller, so identical points stay visible as rings
        for j, bench in enumerate(benches):
            if bench in per and per[bench].get("n") and per[bench].get("mean_tokens") is not None:
                ax.scatter(per[bench]["mean_tokens"], 100 * per[bench][f"accuracy_{mode}"], s=size, alpha=0.9,
                           color=colours[i % len(colours)], marker=_MARKERS[j % len(_MARKERS)], edgecolor="black", lw=0.5)
    def header(text: str) -> Any:
        return plt.Line2D([], [], ls="", marker="", label=text)

    handles = [header("model (smaller = later;\nonly to show overlaps):")] + [plt.Line2D([], [], color=colours[i % len(colours)], marker="o", ls="", label=m)
                                    for i, m in enumerate(results)]
    handles += [header(""), header("benchmark:")] + [
        plt.Line2D([], [], color="grey", marker=_MARKERS[j % len(_MARKERS)], ls="", label=BENCHMARK_LABELS.get(b, b))
        for j, b in enumerate(benches)]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # one legend: fits bbox
    ax.set_xlabel("mean response length (tokens)")
    ax.set_ylabel(f"accuracy (%, {mode} grading)")
    ax.set_ylim(-3, 103)
    ax.set_title("Accuracy vs response length")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_bpc_heatmap(scores: Mapping[str, Mapping[str, Mapping[str, float]]], path: Path,
                     datasets: Sequence[str] = ()) -> Path:
    """Heat-map of BPC (bits/char) in MiCoTA Table 4's layout: rows = CoT datasets, columns = models."""
    plt = _pyplot()
    models = list(scores)
    rows = list(datasets) or sorted({d for per in scores.values() for d in per})
    grid = [[scores[m][d]["bpc"] if d in scores[m] else float("nan") for m in models] for d in rows]
    fig, ax = plt.subplots(figsize=(3.5 + 1.4 * len(models), 2.2 + 0.55 * len(rows)))
    image = ax.imshow(grid, cmap="viridis_r", aspect="auto")
    finite = [v for row in grid for v in row if v == v]
    middle = (min(finite) + max(finite)) / 2 if finite else 0
    for r, row in enumerate(grid):
        for c, value in enumerate(row):
            ax.text(c, r, "–" if value != value else f"{value:.3f}", ha="center", va="center", fontsize=9,
                    color="white" if value == value and value > middle else "black")
    ax.set_xticks(range(len(models)), models, rotation=20, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("model that scores the data")
    ax.set_ylabel("CoT dataset")
    fig.colorbar(image, ax=ax, label="BPC (bits/char)")
    ax.set_title("BPC of each CoT dataset under each model\n(lower = the model finds the data easier to learn)")
    return _save(fig, path)


def plot_reflection_words(results: Results, folder: Path) -> list[tuple[Path, str]]:
    """MiCoTA Figure 4 ("wait" per response) and, when counted, the other markers as a labelled extension.

    Returns ``(path, alt text)`` per figure written under ``folder``.
    """
    by_marker = [set(m.get("reflection_by_marker", {})) for per in results.values() for m in per.values()]
    others = sorted(set().union(*by_marker) - {"wait"}) if by_marker else []
    figures = [(plot_marker_bars(results, ["wait"], folder / "reflection_wait.png",
                                 '"wait" per response (MiCoTA Figure 4)'), "Wait per response (Figure 4)")]
    if others:
        figures.append((plot_marker_bars(results, others, folder / "reflection_other_markers.png",
                                         f"Other reflection markers per response ({', '.join(others)})\n"
                                         "micota extension: not in the papers"), "Other reflection markers (extension)"))
    return figures


def plot_marker_bars(results: Results, markers: Sequence[str], path: Path, title: str) -> Path:
    """Grouped bars of the summed mean count of ``markers`` per response, per model × benchmark."""
    plt = _pyplot()
    benches = benchmark_columns(results)
    models = list(results)
    width = 0.8 / max(1, len(models))
    fig, ax = plt.subplots(figsize=(3.0 + len(benches) * (0.6 + 0.25 * len(models)), 4.2))
    for i, model in enumerate(models):
        per = results[model]
        values = [sum(per.get(b, {}).get("reflection_by_marker", {}).get(m, 0.0) for m in markers) for b in benches]
        ax.bar([k + (i - (len(models) - 1) / 2) * width for k in range(len(benches))], values, width, label=model)
    ax.set_xticks(range(len(benches)), [BENCHMARK_LABELS.get(b, b) for b in benches])
    ax.set_xlabel("benchmark")
    ax.set_ylabel("occurrences per response (count)")
    ax.set_title(title)
    ax.legend(title="model", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)
