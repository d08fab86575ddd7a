"""Table-driven tests of the JSON extraction and dialogue validation of stage 2."""

import json
from pathlib import Path

import pytest

from unicorn_hf.synthesis.parsing import DialogueParseError, extract_json, parse_dialogue


DATA = Path(__file__).parent / "data" / "synthesis"

MC_OK = {
    "questions": [{"question": "What color is the bus?", "options": ["Red", "Blue", "Green", "White"], "answer": "A"}]
}

# (reply, expected python value) for replies that must be recovered
RECOVERABLE = [
    ('{"a": 1}', {"a": 1}),
    ('```json\n{"a": 1}\n```', {"a": 1}),
    ('```\n{"a": [1, 2]}\n```\nHope this helps!', {"a": [1, 2]}),
    ('Sure! Here is the JSON:\n{"a": "x"}\nLet me know if you need more.', {"a": "x"}),
    ("{'a': 'single quotes', 'b': True, 'c': None}", {"a": "single quotes", "b": True, "c": None}),
    ('{"a": [1, 2,], }', {"a": [1, 2]}),
    ("{\u201ca\u201d: \u201cb\u201d}", {"a": "b"}),
    ('{"text": "braces } and ] inside a string"}', {"text": "braces } and ] inside a string"}),
    ('[{"question": "q", "answer": "a"}]', [{"question": "q", "answer": "a"}]),
    ('```json\n{"a": 1}', {"a": 1}),  # unterminated fence
    # cut off by max_new_tokens: the complete elements are salvaged
    (
        '{"qa": [{"question": "q1", "answer": "a1"}, {"question": "q2", "answer": "a',
        {"qa": [{"question": "q1", "answer": "a1"}]},
    ),
    ('[{"q": "x}"}, {"q": "y"}, {"q', [{"q": "x}"}, {"q": "y"}]),
]

# (reply, drop reason) for replies that cannot be recovered
UNRECOVERABLE = [
    (None, "empty_generation"),
    ("", "empty_generation"),
    ("   \n", "empty_generation"),
    ("I'm sorry, I cannot help with that.", "no_json"),
    ('{"questions": [{"question": "What is', "truncated_json"),
    ("{not json at all: [}", "truncated_json"),
    ("{question: what, answer: that}", "invalid_json"),
]


@pytest.mark.parametrize(("reply", "expected"), RECOVERABLE)
def test_extract_json_recovers(reply, expected):
    assert extract_json(reply) == expected


@pytest.mark.parametrize(("reply", "reason"), UNRECOVERABLE)
def test_extract_json_rejects_with_reason(reply, reason):
    with pytest.raises(DialogueParseError) as caught:
        extract_json(reply)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("answer", "letter"),
    [("A", "A"), ("(b)", "B"), ("C. Green", "C"), ("d)", "D"), ("White", "D"), ("blue", "B")],
)
def test_mc_answer_normalised_to_letter(answer, letter):
    reply = {"questions": [{**MC_OK["questions"][0], "answer": answer}]}
    (turn,) = parse_dialogue("mc", json.dumps(reply), 1, 8)
    assert turn.answer == letter


def test_mc_options_as_mapping_and_prefixed():
    reply = {
        "questions": [
            {"question": "q?", "options": {"A": "A. one", "B": "B) two", "C": "three", "D": "four"}, "answer": "B"}
        ]
    }
    (turn,) = parse_dialogue("mc", json.dumps(reply), 1, 1)
    assert turn.options == ["one", "two", "three", "four"]


@pytest.mark.parametrize(
    ("task", "reply", "reason"),
    [
        ("mc", {"questions": [{"question": "q?", "options": ["a", "b", "c"], "answer": "A"}]}, "schema_mismatch"),
        ("mc", {"questions": [{"question": "q?", "options": ["a", "a", "c", "d"], "answer": "A"}]}, "schema_mismatch"),
        ("mc", {"questions": [{"question": "q?", "options": ["a", "b", "c", "d"], "answer": "E"}]}, "schema_mismatch"),
        ("qa", {"conversations": [{"question": "", "answer": "x"}]}, "schema_mismatch"),
        ("qa", {"title": "no list here"}, "schema_mismatch"),
        ("qa", {"conversations": [{"question": "q", "answer": "a"}]}, "too_few_turns"),
        ("reasoning", [], "schema_mismatch"),
    ],
)
def test_invalid_dialogues_dropped_with_reason(task, reply, reason):
    with pytest.raises(DialogueParseError) as caught:
        parse_dialogue(task, json.dumps(reply), 2, 8)
    assert caught.value.reason == reason


def test_bad_turns_skipped_extra_turns_cut():
    pairs = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(5)] + [{"question": "no answer"}]
    turns = parse_dialogue("qa", json.dumps({"conversations": pairs}), 2, 3)
    assert [t.question for t in turns] == ["q0", "q1", "q2"]


def test_aliases_and_single_turn_object():
    (turn,) = parse_dialogue("reasoning", '{"Question": "Why?", "Answer": "Because."}', 1, 2)
    assert (turn.question, turn.answer) == ("Why?", "Because.")


def _saved_replies():
    path = DATA / "smollm2_replies.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("case", _saved_replies(), ids=lambda case: case["name"])
def test_saved_smollm2_replies(case):
    """Real SmolLM2-135M-Instruct replies to the stage-2 prompts, with the outcome the parser must give."""
    if case["expected"] == "ok":
        turns = parse_dialogue(case["task"], case["generation"], case["min_turns"], case["max_turns"])
        assert len(turns) == case["turns"]
    else:
        with pytest.raises(DialogueParseError) as caught:
            parse_dialogue(case["task"], case["generation"], case["min_turns"], case["max_turns"])
        assert caught.value.reason == case["expected"]
