"""A PHI canary: a unique fake medical record number sent every way a client could.

It rides in request bodies, the context object, headers, subgroup values,
outcome and record items, and malformed requests. Afterwards it must appear
nowhere: not in the sidecar's log, not in /metrics, not in any response but
the prediction's own, and not in the prediction store on disk.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from equiguard.cohort import generate_cohort, prediction_requests
from helpers.bento import BentoServer
from helpers.sidecar import TOKEN, running_sidecar, sidecar_config


class Recorder:
    """Calls the sidecar and keeps every response it gets, headers and body."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.responses: list[str] = []
        self.predictions: list[str] = []  # the predictions' own responses

    def call(
        self,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        prediction: bool = False,
    ) -> int:
        request = urllib.request.Request(self.url + path, data=body, headers=headers or {})
        status: int
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, text = response.status, f"{response.headers}\n{response.read().decode()}"
        except urllib.error.HTTPError as error:
            status, text = error.code, f"{error.headers}\n{error.read().decode()}"
        (self.predictions if prediction and status == 200 else self.responses).append(text)
        return status


def test_a_fake_medical_record_number_leaves_no_trace_outside_its_own_prediction(
    readmission_v1: BentoServer, tmp_path: Path
) -> None:
    canary = f"MRN-{uuid.uuid4().hex}"
    json_headers = {"Content-Type": "application/json"}
    auth = json_headers | {"Authorization": f"Bearer {TOKEN}"}
    requests = prediction_requests(generate_cohort(30, 77))
    with running_sidecar(sidecar_config(readmission_v1.url, tmp_path), tmp_path) as sidecar:
        client = Recorder(sidecar.url)
        for i, request in enumerate(requests):
            body = dict(request.body) | {"mrn": canary}
            body["equiguard_context"] = body["equiguard_context"] | {"mrn": canary}
            if i % 3 == 0:
                body["equiguard_context"]["race"] = canary  # an undeclared subgroup value
            headers = request.headers | json_headers | {"X-Patient-MRN": canary}
            if i % 5 == 0:
                headers["X-Patient-Language"] = canary
            assert (
                client.call("/predict", json.dumps(body).encode(), headers, prediction=True) == 200
            )
        malformed = [
            b'{"age": 70, "mrn": "' + canary.encode() + b'"',
            json.dumps({"age": 70, "equiguard_context": canary}).encode(),
        ]
        for unreadable in malformed:
            assert client.call("/predict", unreadable, json_headers) == 400
        outcomes = [
            {"request_id": requests[0].request_id, "label": 1, "mrn": canary},
            {"request_id": requests[1].request_id, "label": canary},
            {"request_id": requests[2].request_id, "label": 0, "race": canary},
            {"request_id": requests[3].request_id, "label": 1, "race": [canary]},
        ] + [{"request_id": r.request_id, "label": i % 2} for i, r in enumerate(requests[4:])]
        assert client.call("/v1/outcomes", json.dumps({"outcomes": outcomes}).encode(), auth) == 200
        assert client.call("/v1/outcomes", b'{"outcomes": [' + canary.encode(), auth) == 400
        assert client.call("/v1/outcomes", json.dumps({canary: []}).encode(), auth) == 400
        records = [
            {"request_id": "batch-1", "score": 0.4, "label": 1, "mrn": canary},
            {"request_id": "batch-2", "score": 0.4, "label": 1, "race": canary},
            {"request_id": "batch-3", "score": canary},
            {"request_id": "batch-4", "score": 0.2, "time": canary},
        ]
        assert client.call("/v1/records", json.dumps({"records": records}).encode(), auth) == 200
        assert client.call("/v1/outcomes", b"{}", {"Authorization": f"Bearer {canary}"}) == 401
        for path in (
            "/metrics",
            "/v1/metrics",
            "/v1/slo",
            "/healthz",
            "/readyz",
            f"/v1/metrics?window={canary}",
        ):
            client.call(path)
        client.call("/v1/stats", headers={"Authorization": f"Bearer {TOKEN}"})
    log = sidecar.log_text()
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("predictions.db*"))

    assert len(client.predictions) == len(requests)
    assert len(client.responses) == 14
    leaks = [text for text in client.responses if canary in text]
    assert leaks == []
    assert canary not in log
    assert canary.encode() not in stored
    # The store did record the predictions, with the canary's groups as unknown.
    assert requests[0].request_id.encode() in stored
