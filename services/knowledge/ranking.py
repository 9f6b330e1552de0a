"""Fusing ranked candidate lists into one ranking. Pure functions: the service and the
retrieval benchmark (``scripts/bench_knowledge.py``) call the same code.

A search produces up to four lists: the dense (vector) and lexical (BM25) candidates of the
visitor's message, and, for a follow-up, the same two for the message read in the context
of the conversation. Each list has a weight; ``Fusion`` holds the weights and the method,
chosen by measurement on the labelled set (see docs/knowledge.md, "Ranking").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Literal, Sequence


@dataclass(frozen=True)
class Fusion:
    # "rrf": weighted reciprocal rank fusion, sum of w / (k + rank);
    # "cc": a convex combination of scores normalised per list (see ``_normalised``)
    method: Literal["rrf", "cc"] = "rrf"
    rrf_k: int = 60
    dense_weight: float = 1.0
    lexical_weight: float = 1.0
    # the lists of the message read with its context, relative to the message's own
    context_weight: float = 1.0
    # candidates taken from each list
    depth: int = 50
    # how "cc" puts each side's scores on [0, 1]: "minmax" over the list, or "absolute":
    # cosine as it is, and BM25 divided by the query's total IDF (the share of the question
    # a chunk covers), so a side that matched little contributes little
    dense_norm: Literal["minmax", "absolute"] = "minmax"
    lexical_norm: Literal["minmax", "absolute"] = "minmax"
    # "minmax" takes its floor at this rank (scores below it count 0): the spread of the best
    # few candidates, not of a long tail, decides how much a lead in similarity is worth
    norm_window: int = 50


@dataclass
class RankedList:
    kind: Literal["dense", "lexical"]
    records: Sequence[Any]            # best first; each has an "id"
    scores: Sequence[float]           # higher is better (cosine similarity, or BM25)
    weight: float = 1.0
    # what an "absolute" normalisation divides by (the query's total IDF for BM25)
    scale: float = 1.0


def _normalised(ranked: RankedList, how: str, depth: int, window: int = 50) -> list[float]:
    """Scores mapped to about [0, 1] so lists of different scales can be added. "minmax":
    the best candidate scores 1 and the list's last about 0, whatever the raw scale;
    "absolute": divided by the list's ``scale``."""
    scores = list(ranked.scores)[:depth]
    if not scores:
        return []
    if how == "absolute":
        return [s / ranked.scale if ranked.scale > 0 else 0.0 for s in scores]
    high, low = max(scores), min(scores[:max(1, window)])
    if high - low < 1e-9:
        return [1.0 if s >= high else 0.0 for s in scores]
    return [max(0.0, (s - low) / (high - low)) for s in scores]


def fuse(lists: Iterable[RankedList], fusion: Fusion) -> list[tuple[Any, float]]:
    """(record, fused score) best first. A record present in several lists keeps the first
    copy seen; ties are broken by the order lists were given, then by rank."""
    totals: dict[Any, float] = {}
    first_seen: dict[Any, tuple[int, int]] = {}
    records: dict[Any, Any] = {}
    for order, ranked in enumerate(lists):
        if ranked.weight <= 0:
            continue
        records_here = list(ranked.records)[:fusion.depth]
        if fusion.method == "rrf":
            contributions = [ranked.weight / (fusion.rrf_k + rank) for rank in range(1, len(records_here) + 1)]
        else:
            how = fusion.dense_norm if ranked.kind == "dense" else fusion.lexical_norm
            contributions = [ranked.weight * s for s in _normalised(ranked, how, fusion.depth, fusion.norm_window)]
        for rank, (record, value) in enumerate(zip(records_here, contributions)):
            key = record["id"]
            totals[key] = totals.get(key, 0.0) + value
            records.setdefault(key, record)
            first_seen.setdefault(key, (order, rank))
    return sorted(((records[key], total) for key, total in totals.items()),
                  key=lambda pair: (-pair[1], first_seen[pair[0]["id"]]))


def side_weight(kind: str, fusion: Fusion) -> float:
    return fusion.dense_weight if kind == "dense" else fusion.lexical_weight
