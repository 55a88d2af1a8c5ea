"""The demo pipeline that ``openautoglm demo`` compiles, plans and runs.

A small, real text-analysis flow built from plain Python functions (no network, no model)::

    raw_text -> clean_text -> split_sentences -+-> word_frequencies --+
                                               +-> keywords ----------+
                                               +-> readability -------+-> merge_report -> summarise
                                               +-> sentiment ---------+        ^             ^
                                               +-> entities ----------+   sentences ---------+

The five analyses are independent, so a scheduler spreads them over the workers; ``cost`` hints
(seconds on a speed-1 worker) tell it which are heavy. Every function is importable, so the
same pipeline loads from YAML (``tests/data/text_pipeline.yaml``).
"""
from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

from openautoglm.pipeline import Pipeline, Task

__all__ = [
    "DEMO_TEXT",
    "build_pipeline",
    "clean_text",
    "split_sentences",
    "word_frequencies",
    "keywords",
    "readability",
    "sentiment",
    "entities",
    "merge_report",
    "summarise",
]

DEMO_TEXT = """
  Modern   data teams run pipelines that mix cleaning, feature extraction, model training and
reporting. A pipeline is a directed acyclic graph: each task waits for the data it reads.
Scheduling decides which task runs where and when. Good schedules keep every worker busy and
avoid moving large results across the network. The classic heuristic, HEFT, ranks tasks by the
longest path to the end of the graph and places each one where it finishes earliest. It was
published by Topcuoglu, Hariri and Wu in 2002 and remains a strong baseline. Learned
schedulers, such as graph neural networks trained on many graphs, try to do better by seeing
the whole graph at once. They can keep a chain of tasks on one worker when communication is
expensive. Sadly, a poor plan wastes hours of cluster time, and a slow planner wastes seconds
on every run. Dask executes the plan on real workers in Berlin, Paris or anywhere else. The
results are excellent when the cost model is accurate, and misleading when it is wrong.
"""

_STOPWORDS = frozenset(
    "a an the and or but of to in on at by for with is are was were be it its this that these "
    "those as from into each every when where which who whom what how why than then there their "
    "they them one can do does did not no so such try many any else".split())
_POSITIVE = frozenset("good strong better best excellent accurate busy remains".split())
_NEGATIVE = frozenset("poor slow wastes sadly misleading wrong expensive large".split())


def clean_text(raw_text: str) -> str:
    """Collapse whitespace and strip the text."""
    return re.sub(r"\s+", " ", raw_text).strip()


def split_sentences(text: str) -> list[str]:
    """Split text into sentences at ``.``, ``!`` or ``?`` followed by a space."""
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if s]


def _words(sentence: str) -> list[str]:
    return re.findall(r"[a-z]+", sentence.lower())


def word_frequencies(sentences: list[str], top: int = 8) -> list[tuple[str, int]]:
    """The ``top`` most frequent words that are not stop words."""
    counts = Counter(w for s in sentences for w in _words(s) if w not in _STOPWORDS)
    return counts.most_common(top)


def keywords(sentences: list[str], top: int = 6) -> dict[str, float]:
    """TF-IDF keywords, each sentence a document; returns word -> score, best first."""
    docs = [[w for w in _words(s) if w not in _STOPWORDS and len(w) > 2] for s in sentences]
    df = Counter(w for d in docs for w in set(d))
    scores: dict[str, float] = {}
    for d in docs:
        for w, c in Counter(d).items():
            scores[w] = scores.get(w, 0.0) + c * math.log((1 + len(docs)) / df[w])
    best = sorted(scores.items(), key=lambda wv: -wv[1])[:top]  # stable: ties keep first-seen order
    return {w: round(v, 3) for w, v in best}


def _syllables(word: str) -> int:
    groups = re.findall(r"[aeiouy]+", word)
    return max(1, len(groups) - (word.endswith("e") and len(groups) > 1))


def readability(sentences: list[str]) -> dict[str, float]:
    """Flesch reading ease (higher is easier) with a vowel-group syllable count."""
    words = [w for s in sentences for w in _words(s)]
    syllables = sum(_syllables(w) for w in words)
    score = 206.835 - 1.015 * len(words) / len(sentences) - 84.6 * syllables / len(words)
    return {"sentences": len(sentences), "words": len(words), "flesch": round(score, 1)}


def sentiment(sentences: list[str]) -> dict[str, float]:
    """Lexicon sentiment: (positive - negative) / matched words, in [-1, 1]."""
    words = [w for s in sentences for w in _words(s)]
    pos = sum(w in _POSITIVE for w in words)
    neg = sum(w in _NEGATIVE for w in words)
    return {"positive": pos, "negative": neg, "score": round((pos - neg) / max(1, pos + neg), 3)}


def entities(sentences: list[str]) -> list[str]:
    """Capitalised words that do not open a sentence (a crude named-entity finder)."""
    found: dict[str, None] = {}
    for s in sentences:
        for w in re.findall(r"\b[A-Za-z]+\b", s)[1:]:
            if w[0].isupper():
                found[w] = None
    return list(found)


def merge_report(word_counts: list[tuple[str, int]], kw: dict[str, float],
                 reading: dict[str, float], mood: dict[str, float], names: list[str]) -> dict[str, Any]:
    """Merge the five analyses into one report."""
    return {"top_words": word_counts, "keywords": kw, "readability": reading,
            "sentiment": mood, "entities": names}


def summarise(sentences: list[str], report: dict[str, Any], n: int = 2) -> str:
    """Extractive summary: the ``n`` sentences richest in keywords, in their original order."""
    weights = report["keywords"]
    scored = sorted(range(len(sentences)),
                    key=lambda i: -sum(weights.get(w, 0.0) for w in _words(sentences[i])))
    return " ".join(sentences[i] for i in sorted(scored[:n]))


def build_pipeline() -> Pipeline:
    """The demo pipeline (9 tasks; its only input is ``raw_text``).

    Example:
        >>> p = build_pipeline()
        >>> p.inputs, len(p)
        (['raw_text'], 9)
    """
    sentences = "sentences"
    return Pipeline("text_analysis", [
        Task("clean_text", func=clean_text, input_key="raw_text", output_key="cleaned_text",
             cost=0.5, output_size=0.2),
        Task("split_sentences", func=split_sentences, input_key="cleaned_text",
             output_key=sentences, cost=0.5, output_size=0.2),
        Task("word_frequencies", func=word_frequencies, input_key=sentences,
             output_key="word_counts", cost=2.0, output_size=0.1),
        Task("keywords", func=keywords, input_key=sentences, output_key="keywords", cost=3.0,
             output_size=0.1),
        Task("readability", func=readability, input_key=sentences, output_key="readability",
             cost=1.5, output_size=0.1),
        Task("sentiment", func=sentiment, input_key=sentences, output_key="sentiment",
             cost=1.0, output_size=0.1),
        Task("entities", func=entities, input_key=sentences, output_key="entities", cost=1.5,
             output_size=0.1),
        Task("merge_report", func=merge_report, output_key="report", cost=0.5, output_size=0.2,
             input_keys=["word_counts", "keywords", "readability", "sentiment", "entities"]),
        Task("summarise", func=summarise, input_keys=[sentences, "report"],
             output_key="summary", cost=1.0),
    ])
