"""The outcome endpoint speaks TLS when a certificate is configured."""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from helpers.bento import free_port
from helpers.sidecar import TOKEN, running_sidecar, sidecar_config


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "tls.crt", folder / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def test_outcomes_travel_over_tls_and_plain_http_is_not_served(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    config = sidecar_config(f"http://127.0.0.1:{free_port()}", tmp_path)
    config["sidecar"]["tls"] = {"certFile": str(cert), "keyFile": str(key)}
    trusted = ssl.create_default_context(cafile=str(cert))
    with running_sidecar(config, tmp_path, ca_file=cert) as sidecar:
        request = urllib.request.Request(
            f"{sidecar.url}/v1/outcomes",
            data=json.dumps({"outcomes": [{"request_id": "r-1", "label": 1}]}).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10, context=trusted) as response:
            assert json.load(response)["unknown"] == 1
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(f"http://127.0.0.1:{sidecar.port}/healthz", timeout=5)
