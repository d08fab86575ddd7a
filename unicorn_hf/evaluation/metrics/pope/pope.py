"""POPE metrics (Li et al., 2023): accuracy, precision, recall, F1 and yes-ratio of yes/no answers.

Positive class = "yes" (the object is in the image). Predictions are already extracted answers: "yes", "no", or ""
for a generation that committed to neither. An empty prediction is wrong for accuracy and is not a "yes", so it
lowers recall but never counts as a false positive; `unparsed` reports how many there were.
"""

import datasets
import evaluate


_DESCRIPTION = "POPE accuracy, precision, recall, F1 (positive = 'yes') and yes-ratio of extracted yes/no answers."
_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): "yes", "no" or "" (unparsed).
    references (`list[str]`): "yes" or "no".
Returns:
    accuracy, precision, recall, f1, yes_ratio (fraction of predictions that are "yes"), unparsed (count), n.
Examples:
    >>> pope = evaluate.load("unicorn_hf/evaluation/metrics/pope")
    >>> pope.compute(predictions=["yes", "no", "yes", ""], references=["yes", "no", "no", "yes"])["f1"]
    0.5
"""
_CITATION = """@inproceedings{li2023pope, title={Evaluating Object Hallucination in Large Vision-Language Models},
author={Li, Yifan and Du, Yifan and Zhou, Kun and Wang, Jinpeng and Zhao, Wayne Xin and Wen, Ji-Rong},
booktitle={EMNLP}, year={2023}}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Pope(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references):
        for ref in references:
            if ref not in ("yes", "no"):
                raise ValueError(f"POPE references must be 'yes' or 'no', got {ref!r}")
        n = len(references)
        tp = sum(p == "yes" and r == "yes" for p, r in zip(predictions, references, strict=True))
        fp = sum(p == "yes" and r == "no" for p, r in zip(predictions, references, strict=True))
        fn = sum(p != "yes" and r == "yes" for p, r in zip(predictions, references, strict=True))
        correct = sum(p == r for p, r in zip(predictions, references, strict=True))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {
            "accuracy": correct / n if n else 0.0,
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "yes_ratio": sum(p == "yes" for p in predictions) / n if n else 0.0,
            "unparsed": sum(p not in ("yes", "no") for p in predictions),
            "n": n,
        }
