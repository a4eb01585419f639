"""Renders deploy/observability/prometheus/rules.yml as a PrometheusRule (the
Prometheus Operator's resource), so both come from one source.

Usage: prometheus_rule.py RULES > prometheus-rule.yaml
"""
import sys

import yaml

with open(sys.argv[1]) as f:
    rules = yaml.safe_load(f)

resource = {
    "apiVersion": "monitoring.coreos.com/v1",
    "kind": "PrometheusRule",
    "metadata": {
        "name": "app-v02",
        "namespace": "app-v02",
        "labels": {"app.kubernetes.io/part-of": "app-v02"},
    },
    "spec": {"groups": rules["groups"]},
}
print("# Generated from prometheus/rules.yml by scripts/lib/prometheus_rule.py: edit the rules there.")
print(yaml.safe_dump(resource, sort_keys=False, width=200), end="")
