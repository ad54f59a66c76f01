"""The results plot of a card: one bar per run, grouped, with its 95% interval as error bars (PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence


def plot_comparison(rows: Sequence[Mapping], path: str | Path, title: str, metric_label: str = "score") -> Path:
    """Draw `rows` ({"label", "group", "value", "low", "high"}; low/high may be None) as grouped bars into `path`.

    Bars of one "group" (e.g. a metric or a config) stand side by side, one colour per "label" (e.g. with and
    without profile), so that the personalised and the non-personalised run of each group are next to each other.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and in tests
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError("plot_comparison: no rows to plot")
    for index, row in enumerate(rows):
        missing = [key for key in ("label", "group", "value") if key not in row]
        if missing:
            raise ValueError(f"plot_comparison: row {index} has no {', '.join(missing)} ({dict(row)})")
    groups = list(dict.fromkeys(row["group"] for row in rows))
    labels = list(dict.fromkeys(row["label"] for row in rows))
    width = 0.8 / len(labels)
    figure, axes = plt.subplots(figsize=(max(4.0, 1.2 * len(groups) * max(1, len(labels)) ** 0.5 + 2), 3.6))
    for position, label in enumerate(labels):
        chosen = {row["group"]: row for row in rows if row["label"] == label}
        xs = [g + (position - (len(labels) - 1) / 2) * width for g, group in enumerate(groups) if group in chosen]
        picked = [chosen[group] for group in groups if group in chosen]
        values = [float(row["value"]) for row in picked]
        errors = [[v - (row.get("low") if row.get("low") is not None else v) for v, row in zip(values, picked)],
                  [(row.get("high") if row.get("high") is not None else v) - v for v, row in zip(values, picked)]]
        has_interval = any(row.get("low") is not None or row.get("high") is not None for row in picked)
        axes.bar(xs, values, width=width, label=label, yerr=errors if has_interval else None, capsize=3)
    axes.set_xticks(range(len(groups)), groups)
    axes.set_ylabel(metric_label)
    axes.set_title(title)
    axes.set_ylim(bottom=0)
    if len(labels) > 1:
        axes.legend(frameon=False, fontsize="small")
    axes.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(temporary, dpi=120, metadata={"Software": None})  # no machine details in the file
    plt.close(figure)
    temporary.replace(path)
    return path
