"""Author-style similarity, optional and apart from the benchmark's metrics: is a prediction closer to its own
author's texts than to other authors'?

Each text is embedded with the encoder DenseRetriever holds (mean-pooled hidden states, cached on disk; any
sentence encoder works, e.g. `sentence-transformers/all-MiniLM-L6-v2`, whose pooling is also the mean), and
each vector L2-normalised. A user's author vector is the normalised mean of the vectors of the texts the user wrote:
each profile item's task output field (longlamp_tasks: `abstract`, `reviewText`, `content`, the email's `text`),
never the retrieval text, which puts a product's description or a paper's title before the user's words and lets
encoder truncation cut them. The profiles are those every per-user method reads (`personalization.users`): an item
equal to the reference of an evaluated row (a temporal split's later profiles can hold an earlier row's target) or
dated at or after the user's first query is left out, so the author vector never contains the answer. Per
prediction:

- `style_own`: cosine between the prediction and its author's vector;
- `style_others`: the mean cosine between the prediction and the author vectors of the other users in the set;
- `style_gain`: own - others, how much closer to the author than to a random author (0: no closer);
- `style_rank`: the share of other users' author vectors that are farther from the prediction than its own
  (1: closer to its author than to anyone else; 0.5: as close as a random author).

The calibration needs at least two users with profile texts; a user without any scores NaN (average with
np.nanmean), and so does an empty prediction (nothing was written to have a style: it is counted, not embedded).
Embedding similarity measures topic as much as style: read the numbers beside ROUGE and METEOR, never instead of
them. `report` gives a prediction file's numbers (evaluation/style_similarity.py, the command), the calibration
users, and the ceiling: the same measure with each row's reference in place of its prediction (how close the
user's own text is to the author vector).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Hashable, Mapping, Sequence

import numpy as np

from longlamp_tasks import field_text
from retrieval.dense import DenseRetriever

METRICS = ("style_own", "style_others", "style_gain", "style_rank")


def _normalised(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def _cosines(predictions: np.ndarray, authors: np.ndarray) -> np.ndarray:
    """predictions x authors cosines, one prediction at a time: a matrix product's sums are blocked by its shape,
    so a prediction's scores would otherwise change in their last bits with how many are scored beside it."""
    return np.stack([authors @ vector for vector in predictions]) if len(predictions) else np.zeros((0, len(authors)))


def author_vectors(encoder: DenseRetriever, profiles: Mapping[Hashable, Sequence[str]]) -> dict:
    """{user: normalised mean of the user's normalised profile-text vectors}, for users with a non-blank text."""
    kept = {user: [t for t in texts if t.strip()] for user, texts in profiles.items()}
    kept = {user: texts for user, texts in kept.items() if texts}
    texts = list(dict.fromkeys(t for texts in kept.values() for t in texts))
    if not texts:
        return {}
    row = {text: i for i, text in enumerate(texts)}
    vectors = _normalised(encoder.embed(texts).astype(np.float64))
    return {user: _normalised(vectors[[row[t] for t in texts]].mean(axis=0)) for user, texts in kept.items()}


def style_scores(encoder: DenseRetriever, predictions: Sequence[str], users: Sequence[Hashable],
                 profiles: Mapping[Hashable, Sequence[str]]) -> dict[str, np.ndarray]:
    """Per-sample style scores ({name: array} for each of METRICS) of each prediction against its user; NaN for an
    empty prediction and for a user without profile texts (no author vector), who is also left out of the others'
    calibration."""
    if len(predictions) != len(users):
        raise ValueError(f"{len(predictions)} predictions but {len(users)} users")
    missing = sorted({str(u) for u in users if u not in profiles})
    if missing:
        raise ValueError(f"no profile for {len(missing)} user(s), e.g. {missing[:3]}")
    authors = author_vectors(encoder, profiles)
    if len(authors) < 2:
        raise ValueError("style similarity is calibrated against other users' texts: it needs at least two users "
                         f"with profile texts, got {len(authors)}")
    names = list(authors)
    index = {name: i for i, name in enumerate(names)}
    written = [i for i, text in enumerate(predictions) if text.strip()]
    cosines = np.full((len(predictions), len(names)), np.nan)
    if written:
        cosines[written] = _cosines(_normalised(encoder.embed([predictions[i] for i in written]).astype(np.float64)),
                                    np.stack(list(authors.values())))
    scored = np.array([u in index for u in users]) & ~np.isnan(cosines[:, 0])
    own = np.full(len(predictions), np.nan)
    own[scored] = cosines[np.flatnonzero(scored), [index[u] for u, s in zip(users, scored) if s]]
    others = np.where(scored, (np.nan_to_num(cosines).sum(axis=1) - np.nan_to_num(own)) / (len(names) - 1), np.nan)
    farther = (cosines < own[:, None]).sum(axis=1)  # its own column is never below itself; NaN compares False
    return {"style_own": own, "style_others": others, "style_gain": own - others,
            "style_rank": np.where(scored, farther / (len(names) - 1), np.nan)}


def profiles_from_examples(task, examples: Sequence[Mapping]) -> tuple[dict[str, list[str]], int]:
    """({user: the texts the user wrote in the profile items of the user's rows}, how many profile items were left
    out as leaks): each item's `task.output_field`, a user's rows merged, each text kept once. The profile is the
    one every per-user method reads (`personalization.users.group_users`): no item equal to an evaluated row's
    reference, or dated at or after the user's first query."""
    from personalization.users import group_users
    from retrieval.base import profile_of

    for example in examples:
        profile_of(example)  # a malformed profile is named before anything is embedded
    users = group_users(examples, task)
    profiles = {user.user_id: list(dict.fromkeys(field_text(item.get(task.output_field)) for item in user.profile))
                for user in users}
    return profiles, sum(user.left_out for user in users)


def _mean(values) -> float | None:
    """The mean of the non-NaN values; None (JSON null) when there are none."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else None


def _aggregates(scores: dict[str, np.ndarray], users: Sequence[str]) -> dict:
    """The means over scored examples and over users (each user counts once), and each user's."""
    rows_of = defaultdict(list)
    for index, user in enumerate(users):
        rows_of[user].append(index)
    per_user = {user: {"examples": len(rows), **{m: _mean(scores[m][rows]) for m in METRICS}}
                for user, rows in sorted(rows_of.items())}
    return {"scored_examples": int((~np.isnan(scores["style_own"])).sum()),
            "aggregate": {m: _mean(scores[m]) for m in METRICS},
            "aggregate_by_user": {m: _mean([u[m] if u[m] is not None else np.nan for u in per_user.values()])
                                  for m in METRICS},
            "per_user": per_user}


def report(encoder: DenseRetriever, task, examples: Sequence[Mapping], predictions: Sequence[str]) -> dict:
    """The style scores of predictions against the dataset rows they answer (same order), each user's author vector
    from those rows' profiles: the aggregate over scored examples, over users (each user counts once), each user's
    and each example's numbers; the users the calibration used; the empty predictions (counted, not scored); and the
    ceiling, the same numbers with each row's reference as the prediction (None when a row has none, as a test
    split). NaN (no profile texts, an empty prediction) is written as null and left out of the means."""
    users = [str(example[task.user_column]) for example in examples]
    profiles, dropped = profiles_from_examples(task, examples)
    scores = style_scores(encoder, predictions, users, profiles)
    authors = sorted(user for user, texts in profiles.items() if any(t.strip() for t in texts))
    empty = [example["id"] for example, text in zip(examples, predictions) if not text.strip()]
    references = [example.get("output") for example in examples]
    ceiling = None
    if all(isinstance(text, str) and text.strip() for text in references):
        ceiling = _aggregates(style_scores(encoder, references, users, profiles), users)
        ceiling.pop("per_user")
    aggregates = _aggregates(scores, users)
    return {
        "examples": len(examples), "scored_examples": aggregates.pop("scored_examples"), "users": len(set(users)),
        "empty_predictions": len(empty), "empty_prediction_ids": empty,
        "author_texts": {"field": task.output_field, "left_out_as_references": dropped},
        "calibration_users": authors,
        **aggregates,
        "ceiling": ceiling,
        "per_example": [{"id": example["id"], "user": user,
                         **{m: None if np.isnan(scores[m][i]) else float(scores[m][i]) for m in METRICS}}
                        for i, (example, user) in enumerate(zip(examples, users))],
    }
