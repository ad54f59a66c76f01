"""The leaderboard's plot of a config: the ranked metric by retriever and k, as PNG bytes."""

from __future__ import annotations

import io

import numpy as np


def plot(task: str, rows: list[dict], metric: str, baselines: dict[str, float]) -> bytes:
    """The metric by k, one line per model and retriever, 95% intervals as bars, no-profile runs dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2))
    lines: dict[tuple, list[dict]] = {}
    for row in rows:
        if row["k"] is not None:
            lines.setdefault((row["model"], row["retriever"]), []).append(row)
    for (model, retriever), points in sorted(lines.items()):
        points.sort(key=lambda r: r["k"])
        means = np.array([r["mean"] for r in points])
        errors = np.array([[r["mean"] - r["low"] for r in points], [r["high"] - r["mean"] for r in points]])
        axes.errorbar([r["k"] for r in points], means, yerr=errors, marker="o", capsize=3,
                      label=f"{retriever} ({model})")
    for model, value in sorted(baselines.items()):
        axes.axhline(value, linestyle="--", color="grey", linewidth=1)
        axes.annotate(f"no profile ({model})", (0, value), xycoords=("axes fraction", "data"), fontsize=7,
                      color="grey", va="bottom")
    axes.set_xlabel("retrieved profile items (k)")
    axes.set_ylabel(metric)
    axes.set_title(task)
    if lines:
        axes.legend(fontsize=7)
    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=110)
    plt.close(figure)
    return image.getvalue()
