"""The children the operator builds for a ClinicalModel."""

from __future__ import annotations

import copy
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from equiguard.contracts import names, sidecar_config
from equiguard.contracts.model import ClinicalModel, read_model
from equiguard.contracts.records import DecisionRecord, build_decision
from equiguard.contracts.sidecar_config import parse_config
from equiguard.operator import manifests, recalibration_job
from equiguard.operator.manifests import Images, Revision

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((REPO / "examples/readmission/clinicalmodel.yaml").read_text())
IMAGES = Images(
    sidecar="ghcr.io/equiguard/sidecar:0.1.0",
    job="ghcr.io/equiguard/sidecar:0.1.0",
    # The operator's --model-image, unlike the example's own spec.model.image.
    model="registry.example.org/equiguard/model-runtime:0.2.0",
)
V1 = Revision("readmission:v1", "ghcr.io/equiguard/model-runtime:0.1.0")


def model(**spec_changes: Any) -> ClinicalModel:
    body = copy.deepcopy(EXAMPLE)
    body["metadata"].update(namespace="clinic", uid="uid-1", generation=4)
    body["spec"].update(spec_changes)
    return read_model(body)


def deployment(m: ClinicalModel | None = None, revision: Revision = V1) -> dict[str, Any]:
    m = m or model()
    return manifests.build_deployment(
        m, revision, IMAGES, manifests.config_hash(manifests.build_configmap(m))
    )


def containers(d: dict[str, Any]) -> dict[str, dict[str, Any]]:
    pod = d["spec"]["template"]["spec"]
    return {c["name"]: c for c in pod["initContainers"] + pod["containers"]}


def test_the_deployment_serves_the_bento_behind_the_sidecar() -> None:
    found = containers(deployment())
    assert found["model"]["command"][:3] == ["bentoml", "serve", "readmission:v1"]
    assert found["sidecar"]["command"][:2] == ["equiguard", "sidecar"]
    assert found["sidecar"]["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    service = manifests.build_service(model())
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["spec"]["selector"] == deployment()["spec"]["selector"]["matchLabels"]


def test_a_spec_without_an_image_is_served_on_the_operators_model_image() -> None:
    m = model(model={"bento": "readmission:v1"})
    found = containers(deployment(m, manifests.spec_revision(m, IMAGES)))
    assert found["model"]["image"] == "registry.example.org/equiguard/model-runtime:0.2.0"
    assert found["model"]["command"][:3] == ["bentoml", "serve", "readmission:v1"]


def test_the_specs_own_image_wins_over_the_operators_model_image() -> None:
    m = model()
    found = containers(deployment(m, manifests.spec_revision(m, IMAGES)))
    assert found["model"]["image"] == "ghcr.io/equiguard/model-runtime:0.1.0"


def test_every_container_has_probes_resources_and_the_restricted_security_context() -> None:
    d = deployment()
    pod = d["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for name, container in containers(d).items():
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"] == {"drop": ["ALL"]}, name
        assert security["readOnlyRootFilesystem"] is True, name
        assert container["resources"]["requests"], name
        assert container["resources"]["limits"]["memory"], name
    for name in ("model", "sidecar"):
        assert {"readinessProbe", "livenessProbe"} <= containers(d)[name].keys()


def test_the_operator_can_give_every_model_server_an_environment_variable() -> None:
    images = Images(sidecar="s", job="j", model="m", model_env=(("BENTOML_HOME", "/srv/bentoml"),))
    d = manifests.build_deployment(model(), V1, images, "hash")
    env = {e["name"]: e.get("value") for e in containers(d)["model"]["env"]}
    assert env["BENTOML_HOME"] == "/srv/bentoml"


def test_a_model_env_variable_replaces_the_operators_own_in_model_servers_and_jobs() -> None:
    images = Images(sidecar="s", job="j", model="m", model_env=(("TMPDIR", "/scratch"),))
    d = manifests.build_deployment(model(), V1, images, "hash")
    job = recalibration_job.build_recalibration_job(model(), V1, "tpr-gap-race", images)
    for env in (
        containers(d)["model"]["env"],
        job["spec"]["template"]["spec"]["containers"][0]["env"],
    ):
        assert [e.get("value") for e in env if e["name"] == "TMPDIR"] == ["/scratch"]


def test_the_declared_placement_pins_the_pods_to_their_node_pool() -> None:
    placement = {
        "nodeSelector": {"pool": "phi"},
        "tolerations": [{"key": "phi", "operator": "Exists", "effect": "NoSchedule"}],
    }
    pod = deployment(model(placement=placement))["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "phi"}
    assert pod["tolerations"] == placement["tolerations"]
    assert "nodeSelector" not in deployment()["spec"]["template"]["spec"]


def test_declared_resources_replace_the_defaults() -> None:
    m = model(resources={"model": {"requests": {"cpu": "2", "memory": "4Gi"}}})
    assert containers(deployment(m))["model"]["resources"] == {
        "requests": {"cpu": "2", "memory": "4Gi"}
    }


def test_the_revision_is_on_the_pods_but_not_in_the_immutable_selector() -> None:
    d = deployment(revision=Revision("readmission:v2", V1.image))
    template = d["spec"]["template"]["metadata"]
    assert template["annotations"][names.REVISION_ANNOTATION] == "readmission:v2"
    assert template["labels"][names.REVISION_LABEL] == "readmission.v2"
    assert names.REVISION_LABEL not in d["spec"]["selector"]["matchLabels"]
    assert deployment()["spec"]["selector"] == d["spec"]["selector"]


def test_a_revision_label_stays_a_valid_label_value_for_long_tags() -> None:
    tag = "a-very-long-bento-name-for-a-readmission-model:" + "v" * 60
    label = names.revision_label(tag)
    assert len(label) <= 63 and label[0].isalnum() and label[-1].isalnum()
    assert label != names.revision_label(tag + "x")


def test_a_changed_sidecar_configuration_rolls_the_pods() -> None:
    before = deployment()["spec"]["template"]["metadata"]["annotations"]
    changed = model(prediction={"scorePath": "$.risk", "threshold": "0.40"})
    after = deployment(changed)["spec"]["template"]["metadata"]["annotations"]
    assert before[names.CONFIG_HASH_ANNOTATION] != after[names.CONFIG_HASH_ANNOTATION]


def test_building_twice_gives_the_same_objects() -> None:
    assert deployment() == deployment()
    assert manifests.build_configmap(model()) == manifests.build_configmap(model())


def test_the_rendered_sidecar_configuration_is_accepted_by_the_sidecar(tmp_path: Path) -> None:
    """Runs the init container's own script, then the sidecar's own parser on its output."""
    configmap = manifests.build_configmap(model())
    template, rendered = tmp_path / "template", tmp_path / "rendered"
    template.mkdir()
    rendered.mkdir()
    name = sidecar_config.CONFIG_FILE
    (template / name).write_text(configmap["data"][name])
    init = containers(deployment())["render-config"]
    script = (
        init["command"][2]
        .replace(manifests.TEMPLATE_DIR, str(template))
        .replace(manifests.CONFIG_DIR, str(rendered))
    )
    env = {**os.environ, "POD_IP": "127.1.0.7", "EQUIGUARD_REVISION": "readmission:v1"}
    subprocess.run(["sh", "-c", script], check=True, env=env)
    document = yaml.safe_load((rendered / sidecar_config.CONFIG_FILE).read_text())
    config = parse_config(document)
    assert config.revision == "readmission:v1"
    assert config.upstream == "http://127.1.0.7:3000"
    assert config.host == "127.1.0.7"
    assert config.token_env == sidecar_config.TOKEN_ENV
    assert [slo.name for slo in config.spec.slos] == [s["name"] for s in EXAMPLE["spec"]["slos"]]


def test_the_outcome_token_reaches_the_sidecar_from_its_secret() -> None:
    env = {e["name"]: e for e in containers(deployment())["sidecar"]["env"]}
    assert env[sidecar_config.TOKEN_ENV]["valueFrom"]["secretKeyRef"] == {
        "name": "readmission-outcomes-token",
        "key": "token",
    }


def test_a_postgresql_store_takes_its_dsn_from_the_declared_secret() -> None:
    outcomes = {
        **EXAMPLE["spec"]["outcomes"],
        "store": {"type": "postgresql", "dsnSecret": {"name": "db", "key": "dsn"}},
    }
    m = model(outcomes=outcomes)
    env = {e["name"]: e for e in containers(deployment(m))["sidecar"]["env"]}
    assert env[sidecar_config.DSN_ENV]["valueFrom"]["secretKeyRef"] == {"name": "db", "key": "dsn"}
    config = yaml.safe_load(manifests.build_configmap(m)["data"][sidecar_config.CONFIG_FILE])
    assert config["sidecar"]["store"] == {"type": "postgresql", "dsnEnv": sidecar_config.DSN_ENV}


def test_recalibration_jobs_are_named_by_model_revision_and_slo() -> None:
    m = model()
    build = recalibration_job.build_recalibration_job
    job, again = build(m, V1, "tpr-gap-race", IMAGES), build(m, V1, "tpr-gap-race", IMAGES)
    other = build(m, Revision("readmission:v2", V1.image), "tpr-gap-race", IMAGES)
    assert job["metadata"]["name"] == again["metadata"]["name"]
    assert job["metadata"]["name"] != other["metadata"]["name"]
    assert len(job["metadata"]["name"]) <= 63
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:2] == ["equiguard", "recalibrate"]
    assert command[command.index("--revision") + 1] == "readmission:v1"


def test_a_decision_record_carries_the_evidence_and_its_name_is_its_identity() -> None:
    m = model()
    record = DecisionRecord(
        decision="Rollback",
        reason="RollbackTriggered",
        message="rolled back",
        identity=("tpr-gap-race", "readmission:v2"),
        slo="tpr-gap-race",
        verdict="Violated",
        revision="readmission:v2",
        target_revision="readmission:v1",
        evidence={"metric": "tpr", "estimate": "0.1800", "lower": "0.1200", "upper": "0.2400"},
    )
    body = build_decision(m, record, datetime(2026, 3, 1, tzinfo=UTC))
    assert body["kind"] == "EquityDecision"
    assert body["spec"]["evidence"]["lower"] == "0.1200"
    assert body["spec"]["generation"] == 4 and body["spec"]["modelUID"] == "uid-1"
    assert body["metadata"]["name"].startswith("readmission-risk-rollback-")
    later = build_decision(m, record, datetime(2026, 3, 2, tzinfo=UTC))
    assert later["metadata"]["name"] == body["metadata"]["name"]


def test_the_recalibration_job_runs_the_command_the_recalibration_cli_accepts() -> None:
    from equiguard.recalibration.main import _parser

    outcomes = {
        **EXAMPLE["spec"]["outcomes"],
        "store": {"type": "postgresql", "dsnSecret": {"name": "db", "key": "dsn"}},
    }
    m = model(outcomes=outcomes)
    until = datetime(2026, 3, 1, 12, tzinfo=UTC)
    job = recalibration_job.build_recalibration_job(m, V1, "tpr-gap-race", IMAGES, until=until)
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    command = [part.replace("$(JOB_NAME)", "j").replace("$(JOB_UID)", "u")
               for part in container["command"]]  # fmt: skip
    args = _parser().parse_args(command[2:])
    name = job["metadata"]["name"]
    assert args.store_env == sidecar_config.DSN_ENV and args.until == "2026-03-01T12:00:00Z"
    assert (args.revision, args.slo) == ("readmission:v1", "tpr-gap-race")
    assert args.result_configmap == f"{name}-result"
    env = {e["name"]: e for e in container["env"]}
    assert env["JOB_UID"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['batch.kubernetes.io/controller-uid']"
    )
    assert env[sidecar_config.DSN_ENV]["valueFrom"]["secretKeyRef"]["name"] == "db"
    # The manifest the command names is the model itself, from the Job's ConfigMap.
    configmap = recalibration_job.build_recalibration_manifest(m, name)
    mounted = next(v for v in pod["volumes"] if v["name"] == "manifest")
    assert mounted["configMap"]["name"] == configmap["metadata"]["name"]
    manifest = yaml.safe_load(configmap["data"][recalibration_job.RECALIBRATION_MANIFEST])
    assert manifest["kind"] == "ClinicalModel" and manifest["spec"] == m.spec
    folder, file = recalibration_job.RECALIBRATION_DIR, recalibration_job.RECALIBRATION_MANIFEST
    assert args.model == f"{folder}/{file}"
    # A refusal (3) or a bad manifest (2) fails the Job at once instead of retrying.
    assert job["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [2, 3]


RECALIBRATED = Revision("readmission:v1-recal-0123456789", V1.image)


def test_a_recalibrated_revision_is_served_from_its_calibrations_configmap() -> None:
    from equiguard.recalibration.runtime import _parser as runtime_parser

    d = deployment(revision=RECALIBRATED)
    pod = d["spec"]["template"]["spec"]
    container = containers(d)["model"]
    assert container["command"][:2] == ["equiguard", "serve-calibrated"]
    args = runtime_parser().parse_args(container["command"][2:])
    assert args.revision == RECALIBRATED.bento and args.host == "$(POD_IP)"
    assert args.calibration == f"{manifests.CALIBRATION_DIR}/{manifests.CALIBRATION_KEY}"
    volume = next(v for v in pod["volumes"] if v["name"] == "calibration")
    assert volume["configMap"]["name"] == "readmission-risk-calibration-0123456789"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "calibration")
    assert mount == {"name": "calibration", "mountPath": manifests.CALIBRATION_DIR,
                     "readOnly": True}  # fmt: skip
    # A bento's pods mount no calibration.
    assert "calibration" not in {v["name"] for v in deployment()["spec"]["template"]["spec"]
                                 ["volumes"]}  # fmt: skip


def test_a_sqlite_models_job_reads_the_outcomes_through_the_sidecar_and_publishes_a_configmap(
) -> None:  # fmt: skip
    from equiguard.recalibration.main import _parser

    m = model()
    job = recalibration_job.build_recalibration_job(m, RECALIBRATED, "tpr-gap-race", IMAGES)
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    args = _parser().parse_args(container["command"][2:])
    assert args.store == "http://readmission-risk.clinic.svc"
    assert args.store_token_env == manifests.TOKEN_ENV
    token = EXAMPLE["spec"]["outcomes"]["tokenSecret"]["name"]
    env = {e["name"]: e for e in container["env"]}
    assert env[manifests.TOKEN_ENV]["valueFrom"]["secretKeyRef"]["name"] == token
    assert args.calibration_configmap
    # Recalibrating a recalibrated revision starts from its calibration, mounted.
    assert args.calibration == f"{manifests.CALIBRATION_DIR}/{manifests.CALIBRATION_KEY}"
    assert {"name": "calibration", "configMap": {
        "name": "readmission-risk-calibration-0123456789"}} in pod["volumes"]  # fmt: skip
    # No volume of the model's pods is the Job's.
    assert {v["name"] for v in pod["volumes"]} == {"manifest", "tmp", "calibration"}
    # The model's UID lets the Job make the model the owner of what it publishes.
    configmap = recalibration_job.build_recalibration_manifest(m, job["metadata"]["name"])
    manifest = yaml.safe_load(configmap["data"][recalibration_job.RECALIBRATION_MANIFEST])
    assert manifest["metadata"]["uid"] == "uid-1"


def test_a_calibrations_configmap_is_named_by_the_digest_its_revision_ends_with() -> None:
    assert names.calibration_digest("readmission:v2-recal-98f03fef89") == "98f03fef89"
    assert names.calibration_configmap_name("m", "readmission:v2-recal-98f03fef89") == (
        "m-calibration-98f03fef89"
    )
    for bento in ("readmission:v2", "readmission:v2-recal-xyz", "recal-0123456789:v1"):
        assert names.calibration_configmap_name("m", bento) is None
