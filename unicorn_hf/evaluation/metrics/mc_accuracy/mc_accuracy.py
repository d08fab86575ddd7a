"""Multiple-choice accuracy over extracted option letters (ScienceQA-IMG, MMStar), overall and per category.

An empty prediction ("": no letter could be extracted) is wrong and counted in `unparsed`.
"""

from collections import defaultdict

import datasets
import evaluate


_DESCRIPTION = "Accuracy of extracted multiple-choice letters, overall and per category."
_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): option letters ("A", "B", ...) or "" (unparsed).
    references (`list[str]`): the correct letters.
    categories (`list[str]`): a category per question ("" when the benchmark has none).
Returns:
    accuracy, `<category>/accuracy` for every non-empty category, unparsed (count), n.
Examples:
    >>> mc = evaluate.load("unicorn_hf/evaluation/metrics/mc_accuracy")
    >>> mc.compute(predictions=["A", "", "C"], references=["A", "B", "D"], categories=["x", "x", "y"])["x/accuracy"]
    0.5
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class McAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "references": datasets.Value("string"),
                    "categories": datasets.Value("string"),
                }
            ),
        )

    def _compute(self, predictions, references, categories):
        n = len(references)
        by_category = defaultdict(list)
        for pred, ref, category in zip(predictions, references, categories, strict=True):
            if category:
                by_category[category].append(pred == ref)
        results = {"accuracy": sum(p == r for p, r in zip(predictions, references, strict=True)) / n if n else 0.0}
        for category, hits in sorted(by_category.items()):
            results[f"{category}/accuracy"] = sum(hits) / len(hits)
        results["unparsed"] = sum(not p for p in predictions)
        results["n"] = n
        return results
