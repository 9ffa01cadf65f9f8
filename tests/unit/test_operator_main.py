"""`equiguard operator`'s options and kopf settings."""

from __future__ import annotations

import kopf
from equiguard.operator.main import operator_settings, parse_args


def test_kopf_keeps_its_bookkeeping_on_the_equiguard_api_group() -> None:
    settings = operator_settings(parse_args([]))
    assert settings.persistence.finalizer == "equiguard.io/finalizer"
    progress = settings.persistence.progress_storage
    assert isinstance(progress, kopf.AnnotationsProgressStorage)
    assert progress.prefix == "equiguard.io"
    assert settings.peering.name == "equiguard"
    assert settings.posting.reporting_component == "equiguard-operator"


def test_children_are_watched_only_through_a_server_side_label_selector() -> None:
    selectors = operator_settings(parse_args([])).watching.label_selectors
    assert sorted(str(selector.any_name) for selector in selectors) == [
        "configmaps", "deployments", "services",
    ]  # fmt: skip


def test_options_reach_the_settings_of_the_children() -> None:
    args = parse_args([
        "-n", "clinic", "--sidecar-image", "s:1", "--job-image", "j:1", "--model-image", "m:1",
        "--job-service-account", "recal", "--model-env", "BENTOML_HOME=/srv/bentoml",
        "--peering", "p", "--peering-lifetime", "10", "--tick", "2",
    ])  # fmt: skip
    assert args.namespace == ["clinic"]
    assert (args.sidecar_image, args.job_image, args.job_service_account) == ("s:1", "j:1", "recal")
    assert args.model_image == "m:1"
    assert args.model_env == ["BENTOML_HOME=/srv/bentoml"]
    settings = operator_settings(args)
    assert (settings.peering.name, settings.peering.lifetime) == ("p", 10)


def test_named_namespaces_are_served_without_a_cluster_wide_scan() -> None:
    # A Role per namespace refuses kopf's cluster-wide scan; attempting it
    # would pause the operator for every retry before it gives up.
    assert operator_settings(parse_args(["-n", "clinic", "-n", "research"])).scanning.disabled


def test_namespace_patterns_and_every_namespace_keep_kopfs_scan() -> None:
    for argv in (["-n", "clinic-*"], ["-n", "!sandbox"], ["-n", "a,b"], []):
        assert not operator_settings(parse_args(argv)).scanning.disabled, argv


def test_a_watch_that_goes_silent_is_ended_by_the_operator_after_the_servers_own_timeout() -> None:
    watching = operator_settings(parse_args([])).watching
    assert watching.server_timeout is not None and watching.client_timeout is not None
    assert watching.server_timeout < watching.client_timeout <= 2 * watching.server_timeout


def test_kopf_retries_api_calls_long_enough_to_ride_out_a_three_minute_outage() -> None:
    backoffs = list(operator_settings(parse_args([])).networking.error_backoffs)
    assert backoffs[0] <= 1 and max(backoffs) <= 30
    assert sum(backoffs) >= 300
