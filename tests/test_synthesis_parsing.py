"""Table-driven tests of the JSON extraction and dialogue validation of stage 2."""

import json
from pathlib import Path

import pytest

from unicorn_hf.synthesis.json_recovery import DialogueParseError, extract_json, json_values
from unicorn_hf.synthesis.parsing import is_placeholder, parse_dialogue


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
        (
            "mc",
            {"questions": [{"question": "q?", "options": ["a", "b", "c", "d"], "answer": "E"}]},
            "mc_answer_unmapped",
        ),
        ("qa", {"conversations": [{"question": "", "answer": "x"}]}, "placeholder_turns"),
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


# ----------------------------------------------------------------------------------------- issue 13, cases 4 to 6


def test_literal_newline_inside_a_json_string_is_kept():
    """Case 4: a raw newline inside the answer string (non-strict JSON control characters) is accepted and kept."""
    reply = (
        '{"conversations": [{"question": "Why is the road wet?", "answer": "Step 1: grey sky.\nStep 2: puddles."}]}'
    )
    (turn,) = parse_dialogue("reasoning", reply, 1, 2)
    assert turn.answer == "Step 1: grey sky.\nStep 2: puddles."


PAYLOAD = '{"conversations": [{"question": "What is on the table?", "answer": "A red umbrella."}]}'


@pytest.mark.parametrize(
    "reply",
    [
        f'<think>Each turn looks like {{"question": "...", "answer": "..."}}; one turn.</think>\n{PAYLOAD}',
        f'Each turn looks like {{"question": "...", "answer": "..."}}.</think>{PAYLOAD}',  # "<think>" was prefilled
        f"Here are [3] questions:\n{PAYLOAD}",
        f'Here are [3] questions:\n```json\n{PAYLOAD}\n```\nThe format is {{"question": "...", "answer": "..."}}.',
        f'Here are [3] questions:\n{PAYLOAD[:-2]}, {{"question": "What col',  # cut off: the tail is salvaged
    ],
)
def test_the_payload_that_validates_wins_over_prose_and_reasoning(reply):
    """Case 5: an example object quoted in a reasoning block or prose, or a "[3]" before the payload, never wins."""
    (turn,) = parse_dialogue("qa", reply, 1, 2)
    assert (turn.question, turn.answer) == ("What is on the table?", "A red umbrella.")


@pytest.mark.parametrize(
    "turn",
    [
        {"question": "...", "answer": "..."},
        {"question": "What is on the table?", "answer": ""},
        {"question": "N/A", "answer": "A red umbrella."},
        {"question": "<question>", "answer": "\u2026"},
    ],
)
def test_placeholder_only_turns_are_dropped_with_their_own_reason(turn):
    with pytest.raises(DialogueParseError) as caught:
        parse_dialogue("qa", json.dumps({"conversations": [turn]}), 1, 2)
    assert caught.value.reason == "placeholder_turns"


def test_placeholders_among_real_turns_are_skipped():
    turns = [{"question": "...", "answer": "..."}, {"question": "Why?", "answer": "Because it rained."}]
    (turn,) = parse_dialogue("reasoning", json.dumps({"conversations": turns}), 1, 2)
    assert turn.question == "Why?"


@pytest.mark.parametrize(
    ("text", "placeholder"),
    [("...", True), ("", True), ("N/A", True), ("[answer]", True), ("Option 2", True), ("None", False),
     ("First, ... Second, ...", False), ("A cat.", False)],
)  # fmt: skip
def test_is_placeholder(text, placeholder):
    assert is_placeholder(text) is placeholder


def test_reasoning_block_values_come_after_the_reply_s_own():
    assert json_values('<think>{"a": 1}</think>{"b": 2}') == [{"b": 2}, {"a": 1}]
    assert json_values('<think>cut off while thinking {"a": 1}') == [{"a": 1}]


BACTERIA = ["C. elegans", "E. coli", "S. aureus", "B. subtilis"]


def mc_reply(options, answer) -> str:
    return json.dumps({"questions": [{"question": "Which one?", "options": options, "answer": answer}]})


def test_option_text_that_looks_lettered_is_not_a_label():
    """Case 6: "C. elegans" is a name, not option C; the answer "B. subtilis" is the option with that text (D)."""
    (turn,) = parse_dialogue("mc", mc_reply(BACTERIA, "B. subtilis"), 1, 1)
    assert (turn.options, turn.answer) == (BACTERIA, "D")


@pytest.mark.parametrize(
    ("options", "answer", "expected_options", "letter"),
    [
        (["(6, 2)", "(2, 6)", "(1, 1)", "(0, 0)"], "(6,2)", None, "A"),  # whitespace-insensitive text
        (["Red", "Blue", "Green", "White"], "  green. ", None, "C"),
        (["A. one", "B. two", "C. three", "D. four"], "B", ["one", "two", "three", "four"], "B"),  # all labelled
        (["(a) one", "(b) two", "(c) three", "(d) four"], "d) four", ["one", "two", "three", "four"], "D"),
        (BACTERIA, "b", None, "B"),  # a bare letter is a letter
        (["Red", "Blue", "Green", "White"], "C. Green", None, "C"),  # letter and its own text
    ],
)
def test_mc_answers_given_as_option_text(options, answer, expected_options, letter):
    (turn,) = parse_dialogue("mc", mc_reply(options, answer), 1, 1)
    assert turn.options == (expected_options or options) and turn.answer == letter


@pytest.mark.parametrize(
    ("options", "answer", "reason"),
    [
        (["Red", "Blue", "Green", "White"], "Purple", "mc_answer_unmapped"),
        (["Red", "Blue", "Green", "White"], "C. Blue", "mc_answer_unmapped"),  # the letter and the text disagree
        (["B", "A", "C", "D"], "A", "mc_answer_ambiguous"),  # letter A, or the option whose text is "A" (B)?
        (["(6, 2)", "(6,2)", "(1, 1)", "(0, 0)"], "A", "schema_mismatch"),  # the same option twice
    ],
)
def test_mc_answer_that_maps_to_no_option_or_two_is_rejected(options, answer, reason):
    with pytest.raises(DialogueParseError) as caught:
        parse_dialogue("mc", mc_reply(options, answer), 1, 1)
    assert caught.value.reason == reason


# ------------------------------------------------------------------------------------------- issue 22, cases 3 and 4
DIALOGUE = {
    "conversations": [
        {"question": "What is on the table?", "answer": "A red umbrella."},
        {"question": "What colour is the wall?", "answer": "Pale green."},
        {"question": "Is anyone in the room?", "answer": "No, the room is empty."},
    ]
}
EXAMPLE_TURN = '{"question": "What is in the picture?", "answer": "A dog."}'


@pytest.mark.parametrize("min_turns", [1, 2, 3])
@pytest.mark.parametrize(
    "reply",
    [
        f"Each item looks like this: {EXAMPLE_TURN}\nHere is the dialogue:\n{json.dumps(DIALOGUE)}",
        f"Here is the dialogue:\n```json\n{json.dumps(DIALOGUE)}\n```\nEach item looks like this: {EXAMPLE_TURN}",
        # an example in the expected schema, but with fewer turns
        f'Format: {{"conversations": [{EXAMPLE_TURN}]}}\n{json.dumps(DIALOGUE)}',
        f"<think>One turn would be {EXAMPLE_TURN}.</think>{json.dumps(DIALOGUE)}",
    ],
)
def test_a_filled_in_example_never_wins_over_the_payload(reply, min_turns):
    """Case 3: the reply's payload wins by the stated rule (schema, turns, position), whatever min_turns is."""
    turns = parse_dialogue("qa", reply, min_turns, 8)
    assert [turn.question for turn in turns] == [turn["question"] for turn in DIALOGUE["conversations"]]


def test_the_payload_is_chosen_before_min_turns_is_applied():
    """A one-turn payload after a filled-in two-turn example list: the later value of the same schema and more turns
    wins only by its turns; a payload that is too short is dropped, never replaced by an example."""
    example = {"conversations": [{"question": "Example?", "answer": "Example."}]}
    reply = f"Example: {json.dumps(example)}\nAnswer: {json.dumps(DIALOGUE)}"
    assert len(parse_dialogue("qa", reply, 1, 8)) == 3
    with pytest.raises(DialogueParseError) as caught:
        parse_dialogue("qa", f"{EXAMPLE_TURN}\n{json.dumps(example)}", 2, 8)
    assert caught.value.reason == "too_few_turns"


def mc_mapping_reply(options, answer) -> str:
    return json.dumps({"questions": [{"question": "Which colour?", "options": options, "answer": answer}]})


B_TO_E = {"B": "red", "C": "blue", "D": "green", "E": "white"}


@pytest.mark.parametrize(
    ("options", "answer", "letter"),
    [
        (B_TO_E, "B", "A"),  # case 4: the option the reply's letter named ("red") keeps its answer
        (B_TO_E, "(c)", "B"),
        (B_TO_E, "E. white", "D"),
        (B_TO_E, "green", "C"),  # an answer given as text
        ({"E": "white", "C": "blue", "B": "red", "D": "green"}, "B", "A"),  # keys in any order
        ({"Option B": "red", "Option C": "blue", "Option D": "green", "Option E": "white"}, "D", "C"),
        ({"1": "red", "2": "blue", "3": "green", "4": "white"}, "2", "B"),
        ({"1": "red", "2": "blue", "3": "green", "4": "white"}, 3, "C"),  # a number, not a string
        ({"1": "red", "2": "blue", "3": "green", "4": "white"}, "D", "D"),  # the rendered letter
        ([{"B": "red"}, {"C": "blue"}, {"D": "green"}, {"E": "white"}], "C", "B"),  # a list of one-key mappings
        ({"A": "A. red", "B": "B) blue", "C": "green", "D": "white"}, "B", "B"),  # A-D: nothing moves
    ],
)
def test_mc_options_mapping_keeps_the_option_the_answer_names(options, answer, letter):
    (turn,) = parse_dialogue("mc", mc_mapping_reply(options, answer), 1, 1)
    assert turn.options == ["red", "blue", "green", "white"]
    assert turn.options["ABCD".index(turn.answer)] == turn.options["ABCD".index(letter)]
    assert turn.answer == letter


@pytest.mark.parametrize(
    ("options", "answer", "reason"),
    [
        (B_TO_E, "A", "mc_answer_unmapped"),  # no option has the label A
        (B_TO_E, "A. red", "mc_answer_unmapped"),
        ({"1": "red", "2": "blue", "3": "green", "4": "white"}, "5", "mc_answer_unmapped"),
        ({"B": "red", "b": "blue", "D": "green", "E": "white"}, "B", "mc_options_unlabelled"),  # a repeated label
        ({"first": "red", "second": "blue", "third": "green", "fourth": "white"}, "A", "mc_options_unlabelled"),
        ({"A": "red", "2": "blue", "C": "green", "D": "white"}, "A", "mc_options_unlabelled"),  # mixed kinds
    ],
)
def test_mc_options_mapping_that_cannot_keep_its_answer_is_dropped_with_its_reason(options, answer, reason):
    with pytest.raises(DialogueParseError) as caught:
        parse_dialogue("mc", mc_mapping_reply(options, answer), 1, 1)
    assert caught.value.reason == reason
