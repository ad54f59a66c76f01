"""Author-style similarity, optional and apart from the benchmark's metrics: is a prediction closer to its own
author's texts than to other authors'?

Each text is embedded with the encoder DenseRetriever holds (mean-pooled hidden states, cached on disk; any
sentence encoder works, e.g. `sentence-transformers/all-MiniLM-L6-v2`, whose pooling is also the mean), and
each vector L2-normalised. A user's author vector is the normalised mean of the user's profile-text vectors.
Per prediction:

- `style_own`: cosine between the prediction and its author's vector;
- `style_others`: the mean cosine between the prediction and the author vectors of the other users in the set;
- `style_gain`: own - others, how much closer to the author than to a random author (0: no closer);
- `style_rank`: the share of other users' author vectors that are farther from the prediction than its own
  (1: closer to its author than to anyone else; 0.5: as close as a random author).

The calibration needs at least two users with profile texts; a user without any scores NaN (average with
np.nanmean). Embedding similarity measures topic as much as style: read the numbers beside ROUGE and METEOR,
never instead of them.
"""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import numpy as np

from retrieval.dense import DenseRetriever

METRICS = ("style_own", "style_others", "style_gain", "style_rank")


def _normalised(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


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
    """Per-sample style scores ({name: array} for each of METRICS) of each prediction against its user; NaN for
    a user without profile texts (no author vector), who is also left out of the others' calibration."""
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
    cosines = _normalised(encoder.embed(list(predictions)).astype(np.float64)) @ np.stack(list(authors.values())).T
    scored = np.array([u in index for u in users])
    own = np.full(len(predictions), np.nan)
    own[scored] = cosines[np.flatnonzero(scored), [index[u] for u in users if u in index]]
    others = np.where(scored, (cosines.sum(axis=1) - np.nan_to_num(own)) / (len(names) - 1), np.nan)
    farther = (cosines < own[:, None]).sum(axis=1)  # its own column is never below itself; NaN compares False
    return {"style_own": own, "style_others": others, "style_gain": own - others,
            "style_rank": np.where(scored, farther / (len(names) - 1), np.nan)}


def profiles_from_examples(task, examples: Sequence[Mapping]) -> dict[str, list[str]]:
    """{user: the texts of the user's profile items} from dataset rows, with the task's corpus text of each item
    (the texts retrieval ranks); a user's rows are merged, each text kept once."""
    from retrieval.base import query_and_corpus

    profiles: dict[str, dict[str, None]] = {}
    for example in examples:
        texts = profiles.setdefault(str(example[task.user_column]), {})
        texts.update(dict.fromkeys(query_and_corpus(task, example)[1]))
    return {user: list(texts) for user, texts in profiles.items()}
