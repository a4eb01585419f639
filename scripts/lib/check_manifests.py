"""Checks the rendered Kubernetes manifests against the contracts they must
keep (run by scripts/check-deploy):

- every value the architecture fixes is in the rendered base
  (docs/architecture.md, docs/deploy.md);
- every `checksum/<configmap>` pod annotation matches the ConfigMap's data,
  so that a config change rolls the pods that use it;
- every environment variable set on our containers is one the binary
  accepts (read from its `--help`), in every rendered overlay.

Usage: check_manifests.py BASE_RENDER HELP_DIR RENDER...
  HELP_DIR holds api.help, log-collector.help, cleanup.help.
"""
import hashlib
import json
import re
import sys

import yaml

failures = []


def check(condition, message):
    if not condition and message not in failures:
        failures.append(message)


def load(path):
    with open(path) as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def find(docs, kind, name):
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    failures.append(f"{kind}/{name} is missing")
    return None


def pod_spec(workload):
    if workload["kind"] == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return workload["spec"]["template"]["spec"]


def container(workload, name):
    found = next((c for c in pod_spec(workload)["containers"] if c["name"] == name), None)
    if found is None:
        failures.append(f"{workload['kind']}/{workload['metadata']['name']} has no container {name}")
        return {}
    return found


def env(container_spec):
    return {e["name"]: e for e in container_spec.get("env", [])}


def checksum(configmap):
    data = json.dumps(configmap.get("data", {}), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(data.encode()).hexdigest()


def check_spec_values(docs):
    check(find(docs, "Namespace", "app-v02") is not None, "namespace app-v02")
    for doc in docs:
        if doc["kind"] != "Namespace":
            check(doc["metadata"].get("namespace") == "app-v02", f"{doc['kind']}/{doc['metadata']['name']} not in app-v02")

    api = find(docs, "Deployment", "api")
    check(api["spec"]["replicas"] == 2, "api replicas 2")
    c = container(api, "api")
    check(c["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "200m", "memory": "256Mi"}},
          f"api resources {c['resources']}")
    check(c["livenessProbe"]["httpGet"]["path"] == "/health", "api liveness /health")
    check(c["readinessProbe"]["httpGet"]["path"] == "/ready", "api readiness /ready")
    e = env(c)
    check(e["REDIS_HOST"]["valueFrom"]["configMapKeyRef"] == {"name": "api-config", "key": "redis.host"},
          "REDIS_HOST from api-config redis.host")
    check("REDIS_PORT" in e and "APP_ENV" in e, "api sets REDIS_PORT and APP_ENV")
    check(e["REDIS_PASSWORD_FILE"]["value"].startswith("/etc/redis-secret/"), "api reads the password from a file")
    volumes = {v["name"]: v for v in pod_spec(api)["volumes"]}
    check(volumes["redis-secret"]["secret"]["secretName"] == "redis-secret", "api mounts redis-secret")

    service = find(docs, "Service", "api-service")
    check(service["spec"]["type"] == "NodePort", "api-service is a NodePort")
    check(service["spec"]["ports"][0]["nodePort"] == 30080, "NodePort 30080")

    config = find(docs, "ConfigMap", "api-config")
    check(config["data"]["redis.host"] == "redis-service", "api-config redis.host = redis-service")

    redis_service = find(docs, "Service", "redis-service")
    check(redis_service["spec"]["clusterIP"] == "None", "redis-service is headless")
    check(any(p["port"] == 6379 for p in redis_service["spec"]["ports"]), "redis-service port 6379")
    redis = find(docs, "StatefulSet", "redis")
    check(redis["spec"]["serviceName"] == "redis-service", "redis serviceName")
    claim = redis["spec"]["volumeClaimTemplates"][0]
    check(claim["metadata"]["name"] == "redis-data", "claim redis-data")
    check(claim["spec"]["accessModes"] == ["ReadWriteOnce"], "claim ReadWriteOnce")
    check(claim["spec"]["resources"]["requests"]["storage"] == "1Gi", "claim 1Gi")
    mounts = {m["name"]: m for m in container(redis, "redis")["volumeMounts"]}
    check(mounts["redis-data"]["mountPath"] == "/data", "redis data at /data")
    init = pod_spec(redis)["initContainers"][0]
    init_mounts = {m["name"]: m for m in init["volumeMounts"]}
    check(init_mounts["redis-config"] == {"name": "redis-config", "mountPath": "/etc/redis/redis.conf",
                                          "subPath": "redis.conf", "readOnly": True},
          "redis.conf mounted at /etc/redis/redis.conf with subPath")
    check(env(init)["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "redis-secret", "key": "password"},
          "REDIS_PASSWORD from redis-secret")
    check(env(container(redis, "redis"))["REDISCLI_AUTH"]["valueFrom"]["secretKeyRef"]["name"] == "redis-secret",
          "probes authenticate through REDISCLI_AUTH")
    check(container(redis, "redis")["livenessProbe"]["exec"]["command"] == ["redis-cli", "ping"], "redis-cli ping probe")
    conf = find(docs, "ConfigMap", "redis-config")["data"]["redis.conf"].splitlines()
    for line in ["bind 0.0.0.0", "port 6379", "maxmemory 128mb", "maxmemory-policy allkeys-lru",
                 "save 900 1", "save 300 10", "save 60 10000", "dir /data", "appendonly yes", "appendfsync everysec"]:
        check(line in conf, f"redis.conf has {line!r}")
    check(not any(line.startswith("requirepass") for line in conf), "no password in the redis ConfigMap")
    check("oliver006/redis_exporter" in container(redis, "redis-exporter").get("image", ""), "redis_exporter sidecar")
    limit = container(redis, "redis")["resources"]["limits"]["memory"]
    check(int(limit.rstrip("Mi")) >= 2 * 128, f"redis memory limit {limit} >= 2x maxmemory")
    secret = find(docs, "Secret", "redis-secret")
    check(secret is not None and "password" in (secret.get("data") or {}), "redis-secret has key password")

    collector = find(docs, "DaemonSet", "log-collector")
    spec = pod_spec(collector)
    check(spec["nodeSelector"] == {"kubernetes.io/os": "linux"}, "collector nodeSelector")
    check({"effect": "NoSchedule", "operator": "Exists"} in spec["tolerations"], "collector tolerates NoSchedule")
    varlog = next(v for v in spec["volumes"] if v["name"] == "varlog")
    check(varlog["hostPath"]["path"] == "/var/log", "varlog hostPath /var/log")
    mount = next(m for m in container(collector, "log-collector")["volumeMounts"] if m["name"] == "varlog")
    check(mount == {"name": "varlog", "mountPath": "/var/log", "readOnly": True}, "/var/log mounted read-only")
    node_name = env(container(collector, "log-collector"))["NODE_NAME"]
    check(node_name["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName", "NODE_NAME from the downward API")

    cron = find(docs, "CronJob", "cleanup")
    s = cron["spec"]
    check(s["schedule"] == "0 * * * *", "schedule 0 * * * *")
    check(s["successfulJobsHistoryLimit"] == 3 and s["failedJobsHistoryLimit"] == 1, "history 3/1")
    check(s["concurrencyPolicy"] == "Forbid", "concurrencyPolicy Forbid")
    check("startingDeadlineSeconds" in s, "startingDeadlineSeconds")
    job = s["jobTemplate"]["spec"]
    check(job["backoffLimit"] == 3, "backoffLimit 3")
    check(job["activeDeadlineSeconds"] == 300, "activeDeadlineSeconds 300")
    check(job["template"]["spec"]["restartPolicy"] == "OnFailure", "restartPolicy OnFailure")

    redis_policy = find(docs, "NetworkPolicy", "redis")
    allowed = [peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
               for rule in redis_policy["spec"]["ingress"] if any(p["port"] == 6379 for p in rule["ports"])
               for peer in rule["from"]]
    check(sorted(allowed) == ["api", "cleanup"], f"only api and cleanup reach Redis, not {allowed}")
    check(find(docs, "PodDisruptionBudget", "api") is not None, "api PDB")


def check_checksums(docs):
    configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    for doc in docs:
        if doc["kind"] not in ("Deployment", "StatefulSet", "DaemonSet"):
            continue
        template = doc["spec"]["template"]
        annotations = template["metadata"].get("annotations", {})
        used = set()
        for c in template["spec"].get("containers", []) + template["spec"].get("initContainers", []):
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("configMapKeyRef")
                if ref:
                    used.add(ref["name"])
        for v in template["spec"].get("volumes", []):
            if "configMap" in v:
                used.add(v["configMap"]["name"])
        for name in sorted(used & configmaps.keys()):
            want = checksum(configmaps[name])
            got = annotations.get(f"checksum/{name}")
            check(got == want, f"{doc['kind']}/{doc['metadata']['name']}: annotation checksum/{name} "
                               f"is {got}, the ConfigMap's data hashes to {want}")


def check_secret_readability(docs):
    """A Secret volume (mode 0440 here) is readable by a non-root user only
    through the pod's fsGroup."""
    for doc in docs:
        if doc["kind"] not in ("Deployment", "StatefulSet", "DaemonSet", "CronJob"):
            continue
        spec = pod_spec(doc)
        security = spec.get("securityContext", {})
        if security.get("runAsUser", 0) == 0:
            continue
        for volume in spec.get("volumes", []):
            secret = volume.get("secret")
            if secret and secret.get("defaultMode", 0o644) & 0o004 == 0:
                check("fsGroup" in security,
                      f"{doc['kind']}/{doc['metadata']['name']} mounts Secret {secret['secretName']} "
                      f"(mode {secret.get('defaultMode'):o}) without an fsGroup: uid {security['runAsUser']} cannot read it")


def accepted_variables(help_dir):
    accepted = {}
    for binary in ("api", "log-collector", "cleanup"):
        with open(f"{help_dir}/{binary}.help") as f:
            accepted[binary] = set(re.findall(r"\[env: ([A-Z0-9_]+)", f.read()))
        check(len(accepted[binary]) > 3, f"no variables found in {binary} --help")
    return accepted


def check_environment(path, accepted):
    for doc in load(path):
        if doc["kind"] not in ("Deployment", "StatefulSet", "DaemonSet", "CronJob"):
            continue
        for c in pod_spec(doc)["containers"]:
            binary = next((b for b in accepted if re.search(rf"/{b}(:|@|$)", c["image"])), None)
            if binary is None:
                continue
            for name in env(c):
                check(name in accepted[binary],
                      f"{path}: {doc['kind']}/{doc['metadata']['name']} sets {name}, which {binary} does not read")


def main():
    base, help_dir, renders = sys.argv[1], sys.argv[2], sys.argv[3:]
    docs = load(base)
    check_spec_values(docs)
    accepted = accepted_variables(help_dir)
    for path in [base, *renders]:
        check_checksums(load(path))
        check_secret_readability(load(path))
        check_environment(path, accepted)
    if failures:
        print("manifest checks failed:")
        for failure in failures:
            print(f"  - {failure}")
        sys.exit(1)
    print(f"manifest checks: spec values, checksums and variables hold in {1 + len(renders)} renders")


main()
