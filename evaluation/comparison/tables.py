"""The leaderboard as text: Markdown, one self-contained HTML page and one CSV per config, from leaderboard.json's
content (evaluation/comparison/board.py)."""

from __future__ import annotations

import csv
import html
import io

from scoring.significance import LEVEL

COLUMNS = ("rank", "run", "model", "retriever", "k", "mean", "low", "high", "vs_best", "p_vs_best", "vs_no_profile",
           "p_vs_no_profile", "examples")


def _cells(row: dict) -> list[str]:
    """A row's cells as text: scores to 4 decimals, differences signed, adjusted p-values to 3 significant digits,
    marked * below the level."""
    cells = []
    for column in COLUMNS:
        value = row[column]
        if value is None:
            cells.append("—")
        elif column.startswith("p_"):
            cells.append(f"{value:.3g}" + ("*" if value < LEVEL else ""))
        elif column.startswith("vs_"):
            cells.append(f"{value:+.4f}")
        elif isinstance(value, float):
            cells.append(f"{value:.4f}")
        else:
            cells.append(str(value))
    return cells


def _legend(result: dict) -> str:
    return (f"Ranked by mean {result['metric']}; low/high: {result['interval']}. vs_best: difference from the table's "
            "best run, p_vs_best its p-value adjusted over every pairwise comparison among the table's runs (so the "
            "best may be chosen after looking); vs_no_profile: difference from the run's own no-profile run, "
            "p_vs_no_profile adjusted over the table's runs that have one. Each table holds these two families; "
            f"tests: {result['test']}. * marks an adjusted p-value below {LEVEL}: within a family, the chance that any "
            f"run without a real difference is marked is at most {LEVEL}.")


def csv_text(groups: list[dict]) -> str:
    """One config's groups as CSV: a row per run, with its group's index, split, data and reason to stand apart."""
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(["group", "split", "data", "apart", *COLUMNS, "path"])
    for index, group in enumerate(groups):
        for row in group["rows"]:
            writer.writerow([index, group["split"], group["data"], group["apart"] or "",
                             *[("" if row[c] is None else row[c]) for c in COLUMNS], row["path"]])
    return out.getvalue()


def markdown(result: dict) -> str:
    """The leaderboard as Markdown: one section per config, one table per group of comparable runs."""
    out = [f"# Leaderboard ({result['metric']})", "", _legend(result), ""]
    for task, groups in result["configs"].items():
        out += [f"## {task}", ""]
        for group in groups:
            out.append(f"Split `{group['split']}`, data `{group['data']}`."
                       + (f" **Ranked apart:** {group['apart']}." if group["apart"] else ""))
            out += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
            out += ["| " + " | ".join(_cells(row)) + " |" for row in group["rows"]]
            out.append("")
    if result["not_ranked"]:
        out += ["## Not ranked", ""] + [f"- `{s['path']}`: {s['reason']}" for s in result["not_ranked"]] + [""]
    return "\n".join(out)


def page(result: dict, images: dict[str, str]) -> str:
    """The leaderboard as one self-contained HTML page (plots inline as data URIs)."""
    e = html.escape
    out = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>Leaderboard</title><style>"
           "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}"
           "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:nth-child(2){text-align:left}"
           "</style></head><body>", f"<h1>Leaderboard ({e(result['metric'])})</h1><p>{e(_legend(result))}</p>"]
    for task, groups in result["configs"].items():
        out.append(f"<h2>{e(task)}</h2><img alt='{e(task)}' src='data:image/png;base64,{images[task]}'>")
        for group in groups:
            out.append(f"<p>Split <code>{e(group['split'])}</code>, data <code>{e(group['data'])}</code>."
                       + (f" <b>Ranked apart:</b> {e(group['apart'])}." if group["apart"] else "") + "</p>")
            out.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in COLUMNS) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in _cells(row)) + "</tr>" for row in group["rows"]]
            out.append("</table>")
    if result["not_ranked"]:
        out.append("<h2>Not ranked</h2><ul>" + "".join(f"<li><code>{e(s['path'])}</code>: {e(s['reason'])}</li>"
                                                       for s in result["not_ranked"]) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out)
