"""MME scores (Fu et al., 2023) with the official rule.

Every image of MME carries two yes/no questions. Per sub-task (category):
    acc  = correct answers / questions
    acc+ = images whose two answers are both correct / images
    score = 100 * (acc + acc+)                       (max 200 per category)
Perception = sum of the scores of the 10 perception categories present (max 2000), cognition = sum over the 4
cognition categories present (max 800). An answer that is neither yes nor no ("") is wrong, as in the official
`calculation.py`.
"""

from collections import defaultdict

import datasets
import evaluate


PERCEPTION = (
    "existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR",
)  # fmt: skip
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")

_DESCRIPTION = "MME perception / cognition scores: per category 100 * (acc + acc+), summed per group."
_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): "yes", "no" or "" (unparsed).
    references (`list[str]`): "yes" or "no".
    categories (`list[str]`): the MME sub-task of each question (e.g. "existence", "code_reasoning").
    image_ids (`list[str]`): the image of each question; acc+ groups the questions of one image.
Returns:
    perception, cognition, total, and per category `<category>/acc`, `<category>/acc_plus`, `<category>/score`.
"""
_CITATION = """@article{fu2023mme, title={MME: A Comprehensive Evaluation Benchmark for Multimodal Large Language
Models}, author={Fu, Chaoyou and others}, journal={arXiv:2306.13394}, year={2023}}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Mme(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "references": datasets.Value("string"),
                    "categories": datasets.Value("string"),
                    "image_ids": datasets.Value("string"),
                }
            ),
        )

    def _compute(self, predictions, references, categories, image_ids):
        per_image = defaultdict(list)  # (category, image) -> [correct, ...]
        for pred, ref, category, image_id in zip(predictions, references, categories, image_ids, strict=True):
            if category not in PERCEPTION and category not in COGNITION:
                raise ValueError(f"{category!r} is not an MME category; expected one of {PERCEPTION + COGNITION}")
            if ref not in ("yes", "no"):
                raise ValueError(f"MME references must be 'yes' or 'no', got {ref!r} for image {image_id!r}")
            per_image[(category, image_id)].append(pred == ref)
        results = {}
        for category in sorted({category for category, _ in per_image}):
            groups = [answers for (cat, _), answers in per_image.items() if cat == category]
            acc = sum(map(sum, groups)) / sum(map(len, groups))
            acc_plus = sum(all(answers) for answers in groups) / len(groups)
            results[f"{category}/acc"] = acc
            results[f"{category}/acc_plus"] = acc_plus
            results[f"{category}/score"] = 100 * (acc + acc_plus)
        perception = sum(results.get(f"{c}/score", 0.0) for c in PERCEPTION)
        cognition = sum(results.get(f"{c}/score", 0.0) for c in COGNITION)
        results.update(perception=perception, cognition=cognition, total=perception + cognition)
        results["unparsed"] = sum(p not in ("yes", "no") for p in predictions)
        results["n"] = len(references)
        return results
