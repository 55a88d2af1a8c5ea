"""BLEU and ROUGE checked against sacrebleu's and rouge-score's own published examples."""
from __future__ import annotations

import pytest

from openautoglm.auto import evaluate as ev

# sacrebleu README, "Using SacreBLEU from Python": two reference streams, three segments.
# Its published output: BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ...).
SACREBLEU_REFS_STREAMS = [
    ["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
    ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."],
]
SACREBLEU_SYS = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]


def per_example(streams):
    return [list(refs) for refs in zip(*streams)]


def test_bleu_matches_sacrebleu_readme_example():
    assert ev.bleu(SACREBLEU_SYS, per_example(SACREBLEU_REFS_STREAMS)) == pytest.approx(48.53, abs=0.005)


def test_bleu_reference_order_does_not_matter():
    refs = [list(reversed(r)) for r in per_example(SACREBLEU_REFS_STREAMS)]
    assert ev.bleu(SACREBLEU_SYS, refs) == pytest.approx(48.53, abs=0.005)


def test_bleu_variable_number_of_references():
    """Example 0 has two references, example 1 one: None pads the missing stream."""
    full = ev.bleu(["the dog bit the man", "no one was surprised at all"],
                   [["the dog bit the man", "a dog bit a man"], ["no one was surprised at all"]])
    assert full == pytest.approx(100.0)


def test_rouge_matches_rouge_score_readme_example():
    """rouge-score README: target 'The quick brown fox jumps over the lazy dog', prediction
    'The quick brown dog jumps on the log.', stemmer on. By hand: 9 target and 8 predicted
    tokens, 6 shared unigrams (the x2, quick, brown, dog, jump): P 6/8, R 6/9; bigrams 2 of 7
    and 8 ('the quick', 'quick brown'); LCS 'the quick brown jump the' = 5.
    """
    target = "The quick brown fox jumps over the lazy dog"
    prediction = "The quick brown dog jumps on the log."
    got = ev.rouge([prediction], [target])

    def f(p, r):
        return 2 * p * r / (p + r)

    assert got["rouge1"] == pytest.approx(f(6 / 8, 6 / 9))
    assert got["rouge2"] == pytest.approx(f(2 / 7, 2 / 8))
    assert got["rougeL"] == pytest.approx(f(5 / 8, 5 / 9))


def test_rouge_takes_best_reference_and_averages_over_examples():
    got = ev.rouge(["a b c d", "x y"], [["q r s t", "a b c d"], "z w"], types=["rouge-1"])
    assert got == {"rouge1": pytest.approx(0.5)}


def test_score_all_metrics_and_aliases():
    got = ev.score(SACREBLEU_SYS, per_example(SACREBLEU_REFS_STREAMS), metrics=["BLEU", "rouge-l"])
    assert set(got) == {"BLEU", "rouge-l"}  # keyed as asked for
    assert 0.0 < got["rouge-l"] <= 1.0


@pytest.mark.parametrize(
    ("hyps", "refs", "exc", "match"),
    [
        ("one string", ["x"], TypeError, "wrap it as"),
        (["a", "b"], ["x"], ValueError, "2 hypotheses but 1 reference"),
        ([], [], ValueError, "at least one"),
        (["a"], [[]], TypeError, "non-empty list"),
        (["a"], [[3]], TypeError, r"references\[0\]"),
    ],
)
def test_bad_input_is_named(hyps, refs, exc, match):
    with pytest.raises(exc, match=match):
        ev.bleu(hyps, refs)


def test_unknown_metric_lists_allowed():
    with pytest.raises(ValueError, match="rouge-l"):
        ev.score(["a"], ["a"], metrics=["meteor"])
    with pytest.raises(ValueError, match="call bleu"):
        ev.rouge(["a"], ["a"], types=["bleu"])


def test_evaluation_task_runs_in_a_pipeline():
    pipeline = pytest.importorskip("openautoglm.pipeline")
    task = ev.evaluation_task(metrics=["bleu", "rouge-l"])
    assert isinstance(task, pipeline.Task)
    out = task.func(SACREBLEU_SYS, per_example(SACREBLEU_REFS_STREAMS))
    assert out["bleu"] == pytest.approx(48.53, abs=0.005)
    with pytest.raises(ValueError, match="unknown metric"):
        ev.evaluation_task(metrics=["meteor"])


def test_score_keys_follow_the_names_asked_for():
    """``score(metrics=["rouge-l"])`` answered under ``"rougeL"``: ``out["rouge-l"]`` failed."""
    from openautoglm import score

    out = score(["the cat sat"], ["the cat sat"], metrics=["bleu", "rouge-l", "rouge1"])
    assert list(out) == ["bleu", "rouge-l", "rouge1"]
    assert out["rouge-l"] == out["rouge1"] == 1.0
    assert list(score(["a b"], ["a b"])) == ["bleu", "rouge1", "rouge2", "rougeL"]
