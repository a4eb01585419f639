"""A Kubernetes API stand-in for `scripts/bench collector`: lists PODS pods
on node `bench` (the ones gen_cri_logs.py writes logs for among them), the
namespace `bench` and the node, and holds every watch open without events,
as a quiet cluster does.

Usage: kube_api_fixture.py PORT PODS
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

port, count = int(sys.argv[1]), int(sys.argv[2])


def pod(index):
    name = f"pod-{index}"
    return {
        "metadata": {
            "name": name, "namespace": "bench", "uid": f"uid-{index:04d}", "resourceVersion": "1",
            "labels": {"app.kubernetes.io/name": f"app-{index % 50}", "pod-template-hash": "5c4f"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"app-{index % 50}-5c4f",
                                 "uid": f"rs-{index % 50}", "controller": True}],
        },
        "spec": {"nodeName": "bench", "containers": [{"name": "app", "image": "registry.example/app:1.0"}]},
    }


LISTS = {
    "/api/v1/pods": {"kind": "PodList", "items": [pod(i) for i in range(count)]},
    "/api/v1/namespaces": {"kind": "NamespaceList", "items": [
        {"metadata": {"name": "bench", "resourceVersion": "1", "labels": {"team": "bench"}}}]},
    "/api/v1/nodes": {"kind": "NodeList", "items": [
        {"metadata": {"name": "bench", "resourceVersion": "1",
                      "labels": {"topology.kubernetes.io/zone": "zone-1"}}}]},
}


class Handler(BaseHTTPRequestHandler):
    # Watches are chunked responses, which HTTP/1.0 does not have.
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        url = urlparse(self.path)
        listing = LISTS.get(url.path)
        if listing is None:
            self.send_error(404)
            return
        if parse_qs(url.query).get("watch", [""])[0] in ("true", "1"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            # Nothing changes: hold the watch until the client leaves.
            self.rfile.read()
            return
        body = json.dumps({**listing, "apiVersion": "v1", "metadata": {"resourceVersion": "1"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
