"""Group similar unanswered questions, so a tenant sees the gaps in its knowledge base.

TF-IDF vectors over normalised words (plus a light stemming), cosine similarity with numpy,
and greedy clustering: questions in order of frequency, each joins the first cluster whose
centroid is similar enough, or starts a new one. No model to download, and fast for the few
thousand questions of a date range.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
STOPWORDS = frozenset("""
a an the and or but if of to in on at for with by from about as is are was were be been being do does did
have has had i me my we our you your he she it its they them their this that these those what which who
whom when where why how can could would should will shall may might must please there here any some
not no so than too very just also am
""".split())


def normalise(text: str) -> list[str]:
    words = []
    for word in _WORD.findall(text.lower()):
        if word in STOPWORDS or len(word) < 2:
            continue
        words.append(stem(word))
    return words


def stem(word: str) -> str:
    """A light suffix stripper, applied until nothing changes: it only has to map the forms of
    one word to the same key (deliver, delivery, delivered; Sunday, Sundays)."""
    for _ in range(3):
        before = word
        for suffix in ("ing", "ed", "es", "s", "y"):
            if len(word) > len(suffix) + 2 and word.endswith(suffix):
                word = word[: -len(suffix)]
                if suffix in ("ing", "ed") and len(word) > 3 and word[-1] == word[-2]:
                    word = word[:-1]  # shipping -> shipp -> ship
                break
        if word == before:
            break
    return word


@dataclass
class Cluster:
    label: str
    count: int = 0
    questions: Counter = field(default_factory=Counter)
    members: list[int] = field(default_factory=list)


def cluster(questions: list[str], *, threshold: float = 0.5, max_examples: int = 5) -> list[Cluster]:
    """Clusters of ``questions``, biggest first. The label is the cluster's most asked question."""
    counts = Counter(q.strip() for q in questions if q and q.strip())
    if not counts:
        return []
    distinct = [q for q, _ in counts.most_common()]
    tokens = [normalise(q) for q in distinct]
    vocabulary: dict[str, int] = {}
    for words in tokens:
        for word in words:
            vocabulary.setdefault(word, len(vocabulary))
    n = len(distinct)
    matrix = np.zeros((n, max(1, len(vocabulary))), dtype=np.float32)
    for row, words in enumerate(tokens):
        for word, k in Counter(words).items():
            matrix[row, vocabulary[word]] = k
    df = (matrix > 0).sum(axis=0)
    idf = np.log((1 + n) / (1 + df)) + 1
    matrix *= idf
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1
    matrix /= norms

    clusters: list[Cluster] = []
    centroids: list[np.ndarray] = []
    for row, question in enumerate(distinct):
        vector = matrix[row]
        best, best_sim = -1, threshold
        if centroids and tokens[row]:
            sims = np.stack(centroids) @ vector
            k = int(np.argmax(sims))
            if sims[k] >= best_sim:
                best = k
        if best < 0 or not tokens[row]:
            # questions with no content words only match themselves exactly
            clusters.append(Cluster(label=question))
            centroids.append(vector.copy())
            best = len(clusters) - 1
        else:
            c = centroids[best] * clusters[best].count + vector * counts[question]
            norm = np.linalg.norm(c)
            centroids[best] = c / norm if norm else c
        target = clusters[best]
        target.count += counts[question]
        target.questions[question] += counts[question]
        target.members.append(row)
    clusters.sort(key=lambda c: (-c.count, c.label))
    return clusters
