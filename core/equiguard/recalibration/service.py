"""The BentoML service of a calibrated revision: the base bento's service, recalibrated.

A calibrated bento holds the base bento's source (in `base/`), the calibration
(`calibration.json`) and a generated module that calls `calibrated_revision`
and applies `bentoml.service` to the class it returns. The class serves every
API of the base service on the same route with the same input schema: it
calls the base service in-process, reads the score at `scorePath` in its
answer, replaces it with the calibrated score for the request's group and
answers the rest unchanged. It loads the base service's models, so the bento
build packages them too. The serving image needs equiguard installed (the
model runtime image has it).

The request is validated once, by the base API's input schema on this
class's route; the base API's own function is then called directly in the
same call (bound once at start-up: going through the base instance's API
attribute would run BentoML's descriptor, a signature inspection and a new
wrapper, on every request), and the calibration is a post-step on its answer.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import bentoml
from equiguard.contracts.jsonpath import JsonPath, compile_path
from equiguard.recalibration.groups import GroupResolver
from equiguard.recalibration.maps import Calibration

CALIBRATION_FILE = "calibration.json"
BASE_FOLDER = "base"


def calibrated_revision(folder: Path) -> tuple[type, dict[str, Any]]:
    """The service class and its BentoML configuration, for the bento in `folder`."""
    calibration = Calibration.from_dict(
        json.loads((folder / CALIBRATION_FILE).read_text(encoding="utf-8"))
    )
    base = _import_service(folder / BASE_FOLDER, calibration.base_service)
    if base.dependencies:
        raise ValueError("a calibrated revision cannot wrap a service with dependencies")
    resolver = GroupResolver(calibration.subgroups, calibration.dimensions)
    path = compile_path(calibration.score_path)
    members: dict[str, Any] = {f"base_model_{i}": model for i, model in enumerate(base.models)}

    def __init__(self: Any) -> None:
        self.base = base()
        self.base_functions = {name: api.func.__get__(self.base) for name, api in base.apis.items()}

    members["__init__"] = __init__
    for name, api in base.apis.items():
        if api.batchable or api.is_stream:
            raise ValueError(f"API {name}: batchable and streaming APIs cannot be calibrated")
        members[name] = bentoml.api(
            route=api.route, input_spec=api.input_spec, output_spec=api.output_spec
        )(_calibrated_api(name, api, calibration, resolver, path))
    members["__doc__"] = f"{calibration.base_bento} with a per-group calibration of its score."
    return type("CalibratedRevision", (), members), dict(base.config)


def calibrate_answer(
    answer: object, path: JsonPath, calibration: Calibration, groups: Mapping[str, str]
) -> object:
    """The base service's answer with its score replaced by the calibrated score."""
    if hasattr(answer, "model_dump"):
        answer = answer.model_dump()
    score = path.find_score(answer)
    if score is None:
        return answer
    return _replaced(answer, path.steps, calibration.apply_one(score, groups))


def _calibrated_api(
    name: str, api: Any, calibration: Calibration, resolver: GroupResolver, path: JsonPath
) -> Callable[..., Any]:
    def finish(ctx: bentoml.Context, inputs: Mapping[str, Any], answer: object) -> object:
        groups = resolver.groups(ctx.request.headers, inputs)
        return calibrate_answer(answer, path, calibration, groups)

    def arguments(ctx: bentoml.Context, inputs: dict[str, Any]) -> dict[str, Any]:
        return {**inputs, api.ctx_param: ctx} if api.ctx_param else inputs

    if inspect.iscoroutinefunction(api.func):

        async def call_async(self: Any, ctx: bentoml.Context, **inputs: Any) -> object:
            answer = await self.base_functions[name](**arguments(ctx, inputs))
            return finish(ctx, inputs, answer)

        call_async.__name__ = name
        return call_async

    def call(self: Any, ctx: bentoml.Context, **inputs: Any) -> object:
        answer = self.base_functions[name](**arguments(ctx, inputs))
        return finish(ctx, inputs, answer)

    call.__name__ = name
    return call


def _import_service(folder: Path, import_string: str) -> Any:
    module_name, _, attribute = import_string.partition(":")
    # The base source imports its own sibling modules by their plain names.
    sys.path.insert(0, str(folder))
    module = importlib.import_module(module_name)
    service = module
    for part in attribute.split("."):
        service = getattr(service, part)
    if not isinstance(service, bentoml.Service):
        raise ValueError(f"{import_string} in the base bento is not a BentoML service")
    return service


def _replaced(document: object, steps: tuple[str | int, ...], value: float) -> object:
    """A copy of `document` with `value` at `steps` (containers along the path are copied)."""
    if not steps:
        return value
    head, rest = steps[0], steps[1:]
    if isinstance(head, int) and isinstance(document, list):
        copy = list(document)
        copy[head] = _replaced(copy[head], rest, value)
        return copy
    if isinstance(head, str) and isinstance(document, dict):
        return {**document, head: _replaced(document[head], rest, value)}
    return document
