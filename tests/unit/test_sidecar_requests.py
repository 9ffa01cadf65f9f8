"""Reading prediction requests, score paths, and outcome and record batches."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest
from equiguard.contracts.jsonpath import JsonPathError, compile_path
from equiguard.contracts.sidecar_config import SourcedAttribute
from equiguard.sidecar.batches import BadBatch, parse_outcomes, parse_records
from equiguard.sidecar.extract import BadPredictionRequest, read_request
from equiguard.sidecar.records import is_request_id

ATTRIBUTES = (
    SourcedAttribute("race", "context", "race"),
    SourcedAttribute("age_band", "field", "age"),
    SourcedAttribute("language", "header", "X-Patient-Language"),
)


@pytest.mark.parametrize(
    ("path", "document", "score"),
    [
        ("$.risk", {"risk": 0.25}, 0.25),
        ("$.scores[1]", {"scores": [0.1, 0.9]}, 0.9),
        ("$['p'].value", {"p": {"value": 1}}, 1.0),
        ("$", 0.5, 0.5),
        ("$.risk", {"risk": True}, None),
        ("$.risk", {"risk": "0.3"}, None),
        ("$.risk", {"risk": float("nan")}, None),
        ("$.scores[3]", {"scores": [0.1]}, None),
        ("$.risk", [0.2], None),
    ],
)
def test_score_path_finds_a_finite_number_or_nothing(
    path: str, document: object, score: float | None
) -> None:
    assert compile_path(path).find_score(document) == score


@pytest.mark.parametrize("path", ["risk", "$.", "$[x]", "$.a b"])
def test_score_path_refuses_what_it_cannot_read(path: str) -> None:
    with pytest.raises(JsonPathError):
        compile_path(path)


def test_reads_values_from_fields_headers_and_context_and_strips_the_context() -> None:
    body = json.dumps(
        {"age": 67, "los": 3, "equiguard_context": {"race": "Black", "mrn": "X"}}
    ).encode()
    forward, values = read_request(body, {"X-Patient-Language": "Spanish"}, True, ATTRIBUTES)
    assert json.loads(forward) == {"age": 67, "los": 3}
    assert values == {"race": "Black", "age_band": 67, "language": "Spanish"}


def test_forwards_the_body_unchanged_without_a_context() -> None:
    body = b'{"age": 40,  "los": 3}'
    forward, values = read_request(body, {}, True, ATTRIBUTES)
    assert forward is body
    assert values == {"race": None, "age_band": 40, "language": None}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"age": ', "the request body is not valid JSON"),
        (b'{"equiguard_context": ["Black"]}', "equiguard_context must be a JSON object"),
    ],
)
def test_refuses_an_unreadable_prediction_request(body: bytes, reason: str) -> None:
    with pytest.raises(BadPredictionRequest, match=reason):
        read_request(body, {}, True, ATTRIBUTES)


def groups_of(values: Mapping[str, object]) -> dict[str, str]:
    return {name: str(value) if value is not None else "unknown" for name, value in values.items()}


NAMES = frozenset({"race", "age_band"})


def test_outcome_batch_counts_bad_items_with_reasons_that_quote_no_value() -> None:
    body = json.dumps(
        {
            "outcomes": [
                {"request_id": "a", "label": 1},
                {"request_id": "b", "label": True, "race": "Black"},
                {"request_id": "c", "label": 2},
                {"request_id": "", "label": 0},
                {"request_id": "d", "label": 0, "mrn": "MRN-CANARY-1"},
                "e",
                {"request_id": "f", "label": 1, "race": ["Black"]},
                {"request_id": "g h", "label": 1},  # no prediction could carry this id
            ]
        }
    ).encode()
    batch = parse_outcomes(body, NAMES, groups_of)
    assert [(o.request_id, o.label, dict(o.groups)) for o in batch.items] == [
        ("a", True, {}),
        ("b", True, {"race": "Black"}),
    ]
    assert batch.positions == [0, 1]
    assert batch.invalid == [
        (2, "label must be 0, 1, true or false"),
        (3, "request_id must be a string of 1 to 128 visible ASCII characters"),
        (4, "unknown field 'mrn'"),
        (5, "the item is not a JSON object"),
        (6, "subgroup values must be strings or numbers"),
        (7, "request_id must be a string of 1 to 128 visible ASCII characters"),
    ]
    assert "CANARY" not in repr(batch.invalid)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "the body is not valid JSON"),
        (b"[]", 'one field, "outcomes"'),
        (b'{"outcomes": [], "extra": 1}', 'one field, "outcomes"'),
        (b'{"outcomes": {}}', '"outcomes" must be a list'),
    ],
)
def test_outcome_batch_that_is_not_a_batch_is_refused_whole(body: bytes, reason: str) -> None:
    with pytest.raises(BadBatch, match=reason):
        parse_outcomes(body, NAMES, groups_of)


def test_records_take_time_revision_and_decision_from_the_threshold() -> None:
    body = json.dumps(
        {
            "records": [
                {"request_id": "a", "score": 0.3, "label": 1, "race": "White", "time": 1000},
                {
                    "request_id": "b",
                    "score": 0.29,
                    "time": "2026-01-01T00:00:00Z",
                    "revision": "v1",
                },
                {"request_id": "c", "score": 1.2},
                {"request_id": "g", "score": 0.5, "revision": "MRN-1234567"},
                {"request_id": "d", "score": 0.5, "time": "2026-01-01T00:00:00"},
                {"request_id": "e", "score": 0.5, "time": 1767229200},
                {"request_id": "f", "score": 0.5, "decision": 1},
            ]
        }
    ).encode()
    batch = parse_records(body, NAMES, groups_of, "v1", 0.3, now=1767225600.0 + 60)
    (a, label_a), (b, label_b) = batch.items
    assert (a.time, a.revision, a.decision, label_a, a.groups["race"]) == (
        1000.0,
        "v1",
        True,
        True,
        "White",
    )
    assert (b.time, b.revision, b.decision, label_b) == (1767225600.0, "v1", False, None)
    assert [reason for _, reason in batch.invalid] == [
        "score must be a number from 0 to 1",
        "revision must be 'v1', the revision this sidecar serves (or left out); "
        "send records of another revision to a sidecar that serves it",
        "time must carry a time zone, such as 2026-01-31T08:00:00Z",
        "time is in the future",
        "unknown field 'decision'",
    ]


def test_a_request_id_is_1_to_128_visible_ascii_characters() -> None:
    visible = [chr(c) for c in range(0x21, 0x7F)]
    assert all(is_request_id(c) for c in visible)
    assert not any(is_request_id(chr(c)) for c in [*range(0x21), 0x7F, 0xE9, 0x3000])
    assert is_request_id("a" * 128) and not is_request_id("a" * 129) and not is_request_id("")
    assert not is_request_id(7)
