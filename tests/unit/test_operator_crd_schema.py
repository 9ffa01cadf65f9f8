"""The CRDs teach their API: every field has a type and a description."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

CRDS = Path(__file__).resolve().parents[2] / "crds"
OWN_CRDS = ["clinicalmodel.yaml", "equitydecision.yaml"]


def _fields(schema: Mapping[str, Any], path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for name, child in schema.get("properties", {}).items():
        yield f"{path}.{name}", child
        yield from _fields(child, f"{path}.{name}")
    if "items" in schema:
        yield from _fields(schema["items"], f"{path}[]")


def _schema(file: str) -> Mapping[str, Any]:
    crd = yaml.safe_load((CRDS / file).read_text())
    schema: Mapping[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


@pytest.mark.parametrize("file", OWN_CRDS)
def test_every_field_has_a_type_and_a_description(file: str) -> None:
    def typed(field: Mapping[str, Any]) -> bool:
        return bool(field.get("type") or field.get("x-kubernetes-int-or-string"))

    missing = [
        path
        for path, field in _fields(_schema(file), "")
        if path != ".metadata" and not (field.get("description") and typed(field))
    ]
    assert missing == []


@pytest.mark.parametrize("file", OWN_CRDS)
def test_every_validation_rule_has_a_message(file: str) -> None:
    def rules(schema: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        yield from schema.get("x-kubernetes-validations", [])
        for child in schema.get("properties", {}).values():
            yield from rules(child)
        if "items" in schema:
            yield from rules(schema["items"])

    found = list(rules(_schema(file)))
    assert found
    assert all(rule.get("message", "").strip() for rule in found)


@pytest.mark.parametrize("file", OWN_CRDS)
def test_no_field_name_reads_as_a_boolean_in_yaml_1_1(file: str) -> None:
    """kubectl reads YAML 1.1, where an unquoted key `n` or `on` is a boolean."""
    suspicious = re.compile(r"^\s*(y|n|yes|no|on|off|true|false):", re.IGNORECASE)
    lines = (CRDS / file).read_text().splitlines()
    assert [line for line in lines if suspicious.match(line)] == []
