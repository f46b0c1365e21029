"""Plots are readable: every axis labelled (with units), a legend or colour bar, a title."""

from __future__ import annotations

import pytest

from micota.analyze import plots

RESULTS = {
    model: {bench: {"n": 4, "accuracy_robust": acc, "accuracy_paper": acc / 2, "mean_tokens": tokens,
                    "reflection_per_response": tokens / 100,
                    "reflection_by_marker": {"wait": tokens / 200, "hmm": tokens / 300}} for bench in ("gsm8k", "lab")}
    for model, acc, tokens in (("Instruct", 0.2, 120.0), ("MiCoTA", 0.5, 300.0))
}


@pytest.fixture()
def saved(monkeypatch):
    figures = []

    def keep(fig, path):
        figures.append(fig)
        return path

    monkeypatch.setattr(plots, "_save", keep)
    return figures


def _key(fig) -> str:
    """What explains the marks: a legend, a colour bar, or a figure caption."""
    if any(ax.get_legend() is not None for ax in fig.axes):
        return "legend"
    if any(ax.get_label() == "<colorbar>" for ax in fig.axes):
        return "colorbar"
    return "caption" if fig.texts else "none"


@pytest.mark.parametrize(
    ("draw", "units", "key"),
    [(lambda p: plots.plot_accuracy_vs_length(RESULTS, p), ("tokens", "%"), "legend"),
     (lambda p: plots.plot_marker_bars(RESULTS, ["wait"], p, "wait"), ("count",), "legend"),
     (lambda p: plots.plot_length_distributions({"Instruct": {"gsm8k": [10, 20, 30]}, "MiCoTA": {"gsm8k": [5]}}, p),
      ("tokens",), "caption"),  # box-plot conventions are spelled out in the figure title
     (lambda p: plots.plot_bpc_heatmap({"student": {"long": {"bpc": 0.9}, "mid": {"bpc": 0.6}}}, p), ("bits/char",),
      "colorbar")],
)
def test_every_plot_has_labels_units_and_a_key(saved, tmp_path, draw, units, key):
    draw(tmp_path / "x.png")
    fig = saved[0]
    labels = " ".join(ax.get_xlabel() + " " + ax.get_ylabel() for ax in fig.axes)
    assert all(unit in labels for unit in units), labels
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    assert all(ax.get_title() or fig.texts for ax in panels)
    assert _key(fig) == key


def test_length_panels_skip_models_without_samples(saved, tmp_path):
    plots.plot_length_distributions({"A": {"gsm8k": [10, 20]}, "B": {"lab": [3]}}, tmp_path / "x.png")
    ticks = {ax.get_title(): [t.get_text() for t in ax.get_xticklabels()] for ax in saved[0].axes if ax.get_visible()}
    assert ticks == {"GSM8K": ["A\n(n=2)"], "Lab": ["B\n(n=1)"]}


def test_figure4_counts_wait_and_other_markers_are_a_labelled_extension(saved, tmp_path):
    written = plots.plot_reflection_words(RESULTS, tmp_path)
    assert [p.name for p, _ in written] == ["reflection_wait.png", "reflection_other_markers.png"]
    wait, other = saved
    bars = [patch.get_height() for patch in wait.axes[0].patches]
    assert bars == [0.6, 0.6, 1.5, 1.5]  # "wait" alone: tokens / 200 for Instruct then MiCoTA, per benchmark
    assert "Figure 4" in wait.axes[0].get_title() and "extension" in other.axes[0].get_title()


def test_bpc_heatmap_rows_are_datasets_in_table_order(saved, tmp_path):
    scores = {"32B": {"Strong Teacher": {"bpc": 0.5}, "MiCoTA": {"bpc": 0.3}}, "1.5B": {"Strong Teacher": {"bpc": 0.9}}}
    plots.plot_bpc_heatmap(scores, tmp_path / "x.png", datasets=["Strong Teacher", "MiCoTA"])
    ax = saved[0].axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Strong Teacher", "MiCoTA"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["32B", "1.5B"]
