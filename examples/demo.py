"""`make demo`: the local control plane at work.

Deploys a small HTTP server as a real Deployment, waits until its pod is
Running on the local node, and calls it on its pod IP.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.request

from kubernetes import client, config

NAMESPACE = "equiguard-demo"


def deployment() -> client.V1Deployment:
    labels = {"app.kubernetes.io/name": "hello"}
    container = client.V1Container(
        name="hello",
        image="python:3.11-slim",
        command=["python", "-m", "http.server", "8000", "--bind", "$(POD_IP)"],
        env=[
            client.V1EnvVar(
                name="POD_IP",
                value_from=client.V1EnvVarSource(
                    field_ref=client.V1ObjectFieldSelector(field_path="status.podIP")
                ),
            )
        ],
        ports=[client.V1ContainerPort(container_port=8000)],
        readiness_probe=client.V1Probe(
            http_get=client.V1HTTPGetAction(path="/", port=8000), period_seconds=1
        ),
    )
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name="hello", labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[container]),
            ),
        ),
    )


def main() -> int:
    config.load_kube_config(os.environ.get("KUBECONFIG"))
    core, apps = client.CoreV1Api(), client.AppsV1Api()
    if not any(ns.metadata.name == NAMESPACE for ns in core.list_namespace().items):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    apps.delete_collection_namespaced_deployment(NAMESPACE)
    apps.create_namespaced_deployment(NAMESPACE, deployment())
    print(f"created Deployment {NAMESPACE}/hello; waiting for its pod")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pods = core.list_namespaced_pod(NAMESPACE, label_selector="app.kubernetes.io/name=hello")
        for pod in pods.items:
            ready = any(
                c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []
            )
            if pod.status.phase == "Running" and ready and pod.metadata.deletion_timestamp is None:
                url = f"http://{pod.status.pod_ip}:8000/"
                with urllib.request.urlopen(url, timeout=5) as response:
                    print(f"pod {pod.metadata.name} is Running on node {pod.spec.node_name}")
                    print(f"GET {url} -> HTTP {response.status}")
                return 0
        time.sleep(1)
    print("the pod did not become ready within 120 s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
