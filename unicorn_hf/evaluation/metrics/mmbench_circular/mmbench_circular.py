"""MMBench circular evaluation (Liu et al., 2023).

Each question is asked once per cyclic rotation of its options (N options -> N passes, the correct letter moving
each time). A question counts as solved only if every pass picks the correct option. `vanilla_accuracy` scores each
pass on its own, for comparison. An empty prediction ("") is a failed pass.
"""

from collections import defaultdict

import datasets
import evaluate


_DESCRIPTION = "MMBench CircularEval accuracy: a question is right only if all of its option rotations are right."
_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): option letters or "" (unparsed), one per pass.
    references (`list[str]`): the correct letter of each pass (it moves with the rotation).
    question_ids (`list[str]`): the original question of each pass; passes of one question share it.
    categories (`list[str]`): the category of each pass ("" when unknown).
Returns:
    circular_accuracy, vanilla_accuracy, `<category>/circular_accuracy`, questions, unparsed, n.
"""
_CITATION = """@article{liu2023mmbench, title={MMBench: Is Your Multi-modal Model an All-around Player?},
author={Liu, Yuan and others}, journal={arXiv:2307.06281}, year={2023}}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MmbenchCircular(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "references": datasets.Value("string"),
                    "question_ids": datasets.Value("string"),
                    "categories": datasets.Value("string"),
                }
            ),
        )

    def _compute(self, predictions, references, question_ids, categories):
        passes = defaultdict(list)  # question -> [correct per rotation]
        category_of = {}
        for pred, ref, qid, category in zip(predictions, references, question_ids, categories, strict=True):
            passes[qid].append(pred == ref)
            category_of[qid] = category
        solved = {qid: all(hits) for qid, hits in passes.items()}
        n = len(references)
        results = {
            "circular_accuracy": sum(solved.values()) / len(solved) if solved else 0.0,
            "vanilla_accuracy": sum(p == r for p, r in zip(predictions, references, strict=True)) / n if n else 0.0,
        }
        by_category = defaultdict(list)
        for qid, ok in solved.items():
            if category_of[qid]:
                by_category[category_of[qid]].append(ok)
        for category, oks in sorted(by_category.items()):
            results[f"{category}/circular_accuracy"] = sum(oks) / len(oks)
        results.update(questions=len(solved), unparsed=sum(not p for p in predictions), n=n)
        return results
