"""Checks the rendered Kubernetes manifests against the contracts they must
keep (run by scripts/check-deploy):

- every value the architecture fixes is in the rendered base
  (docs/architecture.md, docs/deploy.md);
- every `checksum/<configmap>` pod annotation matches the ConfigMap's data,
  so that a config change rolls the pods that use it;
- every environment variable set on our containers is one the binary
  accepts (read from its `--help`), in every rendered overlay;
- every port a NetworkPolicy opens admits only the sources listed in REACH
  (the Redis password, the Pushgateway and Loki are not for everyone);
- an Ingress in front of the API takes the API's largest request;
- where components/redis-ha is on: three Redis pods, a Sentinel beside
  each, a PDB, and every program asking those Sentinels for the primary by
  the name the group is configured with.

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
        if doc["kind"] not in CLUSTER_SCOPED:
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
    check({"name": "redis-config", "mountPath": "/etc/redis/redis.conf", "subPath": "redis.conf",
           "readOnly": True} in init["volumeMounts"],
          "redis.conf mounted at /etc/redis/redis.conf with subPath")
    check("redis-auth.sh /run/secrets/redis/password" in " ".join(init["command"]),
          "the init container writes the password with redis-auth.sh, from the Secret's file")
    redis_volumes = {v["name"]: v for v in pod_spec(redis)["volumes"]}
    check(redis_volumes.get("redis-secret", {}).get("secret", {}).get("secretName") == "redis-secret",
          "redis mounts redis-secret")
    exporter = container(redis, "redis-exporter")
    check("REDIS_PASSWORD" not in env(exporter),
          "redis_exporter must not take REDIS_PASSWORD: its /scrape?target= would send it to any address")
    check("--redis.password-file=/run/redis/exporter-passwords.json" in exporter.get("args", []),
          "redis_exporter reads a password map (--redis.password-file)")
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
    check_collector_rbac(docs)

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

    check(find(docs, "PodDisruptionBudget", "api") is not None, "api PDB")


# Who may reach each port, by NetworkPolicy: pods of this namespace by their
# app.kubernetes.io/name, or "<namespace>/<name>" for another namespace's.
# Every port a policy opens is listed here or in OPEN_PORTS.
REACH = {
    # The group itself: replication, and the Sentinels (components/redis-ha).
    ("redis", 6379): {"api", "cleanup", "redis"},
    ("redis", 26379): {"api", "cleanup", "redis"},
    ("redis", 9121): {"monitoring/prometheus"},
    ("postgres", 5432): {"api", "cleanup"},
    ("pushgateway", 9091): {"cleanup", "monitoring/prometheus"},
    ("loki", 3100): {"log-collector", "monitoring/grafana", "monitoring/prometheus"},
}
# Public on purpose: the API (NodePort 30080) and the collector's /metrics.
OPEN_PORTS = {("api", 8080), ("log-collector", 9180)}
ANYONE = "anyone"


def peers(rule):
    """The sources a NetworkPolicy ingress rule admits, named as in REACH."""
    if not rule.get("from"):
        return {ANYONE}
    names = set()
    for peer in rule["from"]:
        namespace = ""
        if "namespaceSelector" in peer:
            labels = peer["namespaceSelector"].get("matchLabels", {})
            namespace = labels.get("kubernetes.io/metadata.name", "*") + "/"
        selector = peer.get("podSelector")
        if selector is None or "ipBlock" in peer:
            names.add(ANYONE)
            continue
        values = []
        if "app.kubernetes.io/name" in selector.get("matchLabels", {}):
            values.append(selector["matchLabels"]["app.kubernetes.io/name"])
        for expression in selector.get("matchExpressions", []):
            if expression["key"] == "app.kubernetes.io/name" and expression["operator"] == "In":
                values.extend(expression["values"])
        if not values:
            names.add(ANYONE)
        names.update(f"{namespace}{value}" for value in values)
    return names


def check_network_reach(path):
    for doc in load(path):
        if doc["kind"] != "NetworkPolicy":
            continue
        name = doc["metadata"]["name"]
        for rule in doc["spec"].get("ingress", []):
            for port in rule.get("ports", [{"port": "every port"}]):
                key = (name, port["port"])
                if key in OPEN_PORTS:
                    continue
                allowed = REACH.get(key, set())
                extra = peers(rule) - allowed
                check(not extra, f"{path}: NetworkPolicy/{name} lets {sorted(extra)} reach port {port['port']}; "
                                 f"only {sorted(allowed) or 'nobody'} may")


def size_bytes(text):
    """An nginx size (`2112k`, `8m`, `1048576`) in bytes."""
    match = re.fullmatch(r"(\d+)([kKmMgG]?)", text.strip())
    if not match:
        return 0
    return int(match[1]) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[match[2].lower()]


def check_ingress_body_size(path, help_dir):
    """nginx refuses bodies over proxy-body-size (1m by default) with a 413
    the API never sees: it must take the API's largest request."""
    with open(f"{help_dir}/api.help") as f:
        default = re.search(r"\[env: MAX_VALUE_BYTES=?[^]]*\] \[default: (\d+)\]", f.read())
    check(default is not None, "MAX_VALUE_BYTES's default not found in api --help")
    docs = load(path)
    api = next((d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "api"), None)
    for doc in docs:
        if doc["kind"] != "Ingress" or api is None or default is None:
            continue
        value = env(container(api, "api")).get("MAX_VALUE_BYTES", {}).get("value", default[1])
        largest = 2 * int(value) + 64 * 1024
        annotation = doc["metadata"].get("annotations", {}).get("nginx.ingress.kubernetes.io/proxy-body-size", "1m")
        check(size_bytes(annotation) >= largest,
              f"{path}: Ingress/{doc['metadata']['name']} takes bodies up to {annotation!r}; the API's largest "
              f"request is {largest} bytes (2 * MAX_VALUE_BYTES + 64 KiB)")


CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}


def check_collector_rbac(docs):
    """The collector reads pods, namespaces and nodes and nothing more, and
    is the one workload with an API token."""
    role = find(docs, "ClusterRole", "app-v02-log-collector")
    if role is not None:
        check(role["rules"] == [{"apiGroups": [""], "resources": ["pods", "namespaces", "nodes"],
                                 "verbs": ["get", "list", "watch"]}],
              f"the collector's ClusterRole grants exactly get/list/watch on pods, namespaces, nodes: {role['rules']}")
    binding = find(docs, "ClusterRoleBinding", "app-v02-log-collector")
    if binding is not None:
        check(binding["subjects"] == [{"kind": "ServiceAccount", "name": "log-collector", "namespace": "app-v02"}],
              "the ClusterRole is bound to the collector's ServiceAccount only")
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "CronJob"):
            mounted = pod_spec(doc).get("automountServiceAccountToken", True)
            wanted = doc["metadata"]["name"] == "log-collector"
            check(mounted == wanted, f"{doc['kind']}/{doc['metadata']['name']}: automountServiceAccountToken "
                                     f"{mounted}; only the collector has an API token")


def check_redis_ha(path):
    docs = load(path)
    if not any(d["kind"] == "ConfigMap" and d["metadata"]["name"] == "redis-ha-config" for d in docs):
        return
    redis = find(docs, "StatefulSet", "redis")
    check(redis["spec"]["replicas"] == 3, f"{path}: the Redis group has 3 pods")
    sentinel = container(redis, "sentinel")
    check({"name": "sentinel", "containerPort": 26379} in sentinel.get("ports", []),
          f"{path}: a Sentinel on 26379 beside each Redis pod")
    init = " ".join(pod_spec(redis)["initContainers"][0]["command"])
    master = re.search(r"HA_MASTER=(\S+)", init)
    check(master is not None and "redis-ha.sh" in init, f"{path}: the init container runs redis-ha.sh with HA_MASTER")
    config = find(docs, "ConfigMap", "api-config")["data"]
    check(master is not None and config.get("redis.sentinel-master") == master[1],
          f"{path}: the programs ask for the group by the name its Sentinels monitor")
    sentinels = config.get("redis.sentinels", "").split(",")
    check(sentinels == [f"redis-{i}.redis-service:26379" for i in range(3)],
          f"{path}: redis.sentinels lists the three Sentinels, not {sentinels}")
    budget = find(docs, "PodDisruptionBudget", "redis")
    check(budget is not None and budget["spec"].get("maxUnavailable") == 1, f"{path}: Redis PDB maxUnavailable 1")
    service = find(docs, "Service", "redis-service")
    check(service["spec"].get("publishNotReadyAddresses") is True,
          f"{path}: redis-service publishes pods before they are ready (a starting pod asks the others)")
    for workload in (find(docs, "Deployment", "api"), find(docs, "CronJob", "cleanup")):
        variables = env(container(workload, workload["metadata"]["name"]))
        for name, key in (("REDIS_SENTINELS", "redis.sentinels"), ("REDIS_SENTINEL_MASTER", "redis.sentinel-master")):
            ref = variables.get(name, {}).get("valueFrom", {}).get("configMapKeyRef")
            check(ref == {"name": "api-config", "key": key},
                  f"{path}: {workload['kind']}/{workload['metadata']['name']} takes {name} from api-config {key}")


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
        check_network_reach(path)
        check_ingress_body_size(path, help_dir)
        check_redis_ha(path)
    if failures:
        print("manifest checks failed:")
        for failure in failures:
            print(f"  - {failure}")
        sys.exit(1)
    print(f"manifest checks: spec values, checksums, variables, network reach, body size and the Redis group hold "
          f"in {1 + len(renders)} renders")


main()
