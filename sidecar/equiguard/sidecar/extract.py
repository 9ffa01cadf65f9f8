"""Reading a prediction request: the subgroup values it carries and the body to forward.

Values come from top-level fields of the JSON body (forwarded to the model),
from headers, or from the `equiguard_context` object, which is removed before
the body is forwarded so that demographics need not be model features.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from equiguard.contracts.jsonpath import JsonPath
from equiguard.contracts.sidecar_config import SourcedAttribute

CONTEXT_KEY = "equiguard_context"


class BadPredictionRequest(ValueError):
    """A prediction request the sidecar cannot read; the message is safe to return."""


def read_request(
    body: bytes, headers: Mapping[str, str], is_json: bool, attributes: tuple[SourcedAttribute, ...]
) -> tuple[bytes, dict[str, object]]:
    """The body to forward and the raw value of each declared attribute (None when absent)."""
    document: object = None
    forward = body
    if is_json and body:
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise BadPredictionRequest("the request body is not valid JSON") from None
        except RecursionError:
            raise BadPredictionRequest("the request body nests JSON too deeply") from None
    context: Mapping[str, object] = {}
    if isinstance(document, dict) and CONTEXT_KEY in document:
        found = document.pop(CONTEXT_KEY)
        if not isinstance(found, dict):
            raise BadPredictionRequest(f"{CONTEXT_KEY} must be a JSON object of subgroup values")
        context = found
        try:
            forward = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
        except RecursionError:  # as deep as the parser allows, and the encoder's stack is deeper
            raise BadPredictionRequest("the request body nests JSON too deeply") from None
    fields: Mapping[str, object] = document if isinstance(document, dict) else {}
    values: dict[str, object] = {}
    for attribute in attributes:
        if attribute.source == "field":
            values[attribute.name] = fields.get(attribute.key)
        elif attribute.source == "context":
            values[attribute.name] = context.get(attribute.key)
        else:
            values[attribute.name] = headers.get(attribute.key)
    return forward, values


def read_score(body: bytes, path: JsonPath) -> float | None:
    """The score in a JSON response body, or None when the body or the path has none."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return path.find_score(document)
