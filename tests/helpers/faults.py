"""Fault injection on loopback for tests of the operator against a real API server.

- ``LoopbackProxy``: a TCP proxy on 127.0.0.1 in front of the API server, which
  an operator's kubeconfig names instead of it. It forwards, goes down (closes
  every connection and refuses new ones) and comes back on the same port, or
  holds every open connection silent (nothing forwarded, nothing closed) while
  new ones flow, as a stuck load balancer does to a watch.
- ``proxied_kubeconfig``: a copy of a kubeconfig whose server is the proxy.
- ``StatsPods``: Pod objects of a model, marked ready on loopback addresses
  (never scheduled: no node runs them), with stand-in sidecars answering
  ``/v1/stats`` there on the operator's sidecar port.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from equiguard.contracts import names
from kubernetes import client

LOOPBACK = "127.0.0.1"
POD_ADDRESSES = ("127.0.0.2", "127.0.0.3")


@dataclass
class _Link:
    client: socket.socket
    server: socket.socket
    silent: threading.Event = field(default_factory=threading.Event)

    def close(self) -> None:
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class LoopbackProxy:
    """TCP on 127.0.0.1:`port` forwarded to `target` (host, port)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self.silenced: list[_Link] = []

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """Refuse new connections and cut every open one."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            link.close()

    def silence(self) -> int:
        """Hold every open connection silent; returns how many."""
        with self._lock:
            for link in self._links:
                link.silent.set()
            self.silenced = list(self._links)
        return len(self.silenced)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                accepted, _ = listener.accept()
            except OSError:
                return  # closed by down()
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                accepted.close()
                continue
            link = _Link(accepted, upstream)
            with self._lock:
                self._links.append(link)
            for source, sink in ((accepted, upstream), (upstream, accepted)):
                threading.Thread(target=self._pump, args=(link, source, sink), daemon=True).start()

    def _pump(self, link: _Link, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if link.silent.is_set():
                    continue  # swallowed: the other end waits for ever
                sink.sendall(data)
        except OSError:
            pass
        with self._lock:
            if link in self._links:
                self._links.remove(link)
        link.close()


def proxied_kubeconfig(kubeconfig: str, proxy: LoopbackProxy, folder: Path) -> str:
    """A copy of `kubeconfig` that reaches its API server through `proxy`."""
    document = yaml.safe_load(Path(kubeconfig).read_text())
    for cluster in document["clusters"]:
        server = urlsplit(cluster["cluster"]["server"])
        cluster["cluster"]["server"] = f"{server.scheme}://{LOOPBACK}:{proxy.port}"
    path = folder / "kubeconfig-through-proxy"
    path.write_text(yaml.safe_dump(document))
    return str(path)


def api_address(kubeconfig: str) -> tuple[str, int]:
    """Where the API server listens (the node's bridge address, which pods reach)."""
    document = yaml.safe_load(Path(kubeconfig).read_text())
    server = urlsplit(document["clusters"][0]["cluster"]["server"])
    assert server.hostname is not None and server.port is not None
    return server.hostname, server.port


Answer = Callable[[str], Mapping[str, Any] | None]  # revision -> statistics, or None: 503


class StatsPods:
    """Ready Pods of a model on the loopback addresses, and what their sidecars answer.

    `answer(revision)` gives the `equiguard.stats/v1` statistics each pod serves.
    """

    def __init__(self, api: client.ApiClient, namespace: str, model: str, answer: Answer) -> None:
        self.core = client.CoreV1Api(api)
        self.namespace, self.model = namespace, model
        self.answer = answer
        self.served: list[str] = []  # revisions asked for, in order
        self._servers: list[ThreadingHTTPServer] = []

    def serve(self) -> None:
        pods = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = dict(
                    item.split("=", 1) for item in urlsplit(self.path).query.split("&") if item
                )
                revision = query.get("revision", "").replace("%3A", ":")
                pods.served.append(revision)
                found = pods.answer(revision)
                body = json.dumps(found if found is not None else {"error": "down"}).encode()
                self.send_response(200 if found is not None else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        for address in POD_ADDRESSES:
            server = ThreadingHTTPServer((address, names.SIDECAR_PORT), Handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._servers.append(server)

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def place(self, revision: str) -> None:
        """Replace the model's stand-in Pods by ready ones annotated with `revision`."""
        selector = ",".join(f"{k}={v}" for k, v in names.selector_labels(self.model).items())
        for pod in self.core.list_namespaced_pod(self.namespace, label_selector=selector).items:
            if (pod.metadata.labels or {}).get("equiguard.io/stand-in") == "true":
                self.core.delete_namespaced_pod(
                    pod.metadata.name, self.namespace, grace_period_seconds=0
                )
        for index, address in enumerate(POD_ADDRESSES):
            name = f"{self.model}-stand-in-{revision.split(':')[-1]}-{index}"
            self.core.create_namespaced_pod(
                self.namespace,
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": name,
                        "labels": {
                            **names.selector_labels(self.model),
                            "equiguard.io/stand-in": "true",
                        },
                        "annotations": {names.REVISION_ANNOTATION: revision},
                    },
                    "spec": {
                        # No node matches: the Pod is never scheduled or run.
                        "nodeSelector": {"equiguard.io/stand-in-node": "none"},
                        "containers": [{"name": "sidecar", "image": "stand-in:none"}],
                    },
                },
            )
            self.core.patch_namespaced_pod_status(
                name,
                self.namespace,
                {
                    "status": {
                        "podIP": address,
                        "podIPs": [{"ip": address}],
                        "conditions": [{"type": "Ready", "status": "True"}],
                    }
                },
            )
