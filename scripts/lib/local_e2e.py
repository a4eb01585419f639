"""End-to-end checks over a running local stack (scripts/local-stack up):
the spec's request path across two replicas, the persistence check across a
Redis SIGKILL, the log path into the Redis Stream, the cleanup job's metrics
through the Pushgateway into Prometheus, the scrape targets, the alert rules,
every PromQL expression of the Grafana dashboard, and the Redis password
(one that breaks naive quoting, given by scripts/local-e2e) reaching every
program but never leaving through the exporter.

Usage: local_e2e.py STACK_DIR   (scripts/local-e2e runs it)
"""
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

from e2e import Stack, eventually, expect, http, step

stack = sys.argv[1]
local = Stack(stack)
ports = local.ports
api_1 = local.url("API_1")
api_2 = local.url("API_2")
prometheus = local.url("PROMETHEUS")
pushgateway = local.url("PUSHGATEWAY")
redis_env = local.redis_env


def redis_cli(*args):
    return local.redis_cli(ports["REDIS_PORT"], *args)


def promql(expr):
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        return json.loads(error.read())


step("POST on replica 1, GET twice on replica 2")
key = f"e2e:{secrets.token_hex(4)}"
status, record = http("POST", f"{api_1}/api/v1/data", {"key": key, "value": "John Doe", "ttl": 3600})
expect(status == 201, f"POST answered {status}: {record}")
http("GET", f"{api_2}/api/v1/data/{key}")
status, read = http("GET", f"{api_2}/api/v1/data/{key}")
expect(status == 200 and read["value"] == "John Doe", f"replica 2 read {status} {read}")
expect(read["cached"] is True, f"second read on replica 2 not cached: {read}")

step("persistence: SIGKILL redis-server, start it on the same data dir")
expect(redis_cli("SET", "test", "hello") == "OK", "SET test hello")
time.sleep(1.5)  # appendfsync everysec
redis_pid = int(open(f"{stack}/pids/redis.pid").read())
os.kill(redis_pid, signal.SIGKILL)
eventually("redis-server gone", lambda: subprocess.run(["kill", "-0", str(redis_pid)], capture_output=True).returncode != 0)
subprocess.run(["scripts/local-stack", "up"], check=True, stdout=subprocess.DEVNULL)
expect(redis_cli("GET", "test") == "hello", "the value did not survive the restart")
entry = redis_cli("GET", f"cache:{key}")
expect(entry.endswith(" John Doe"), f"the cache entry did not survive the restart: {entry!r}")
for api in (api_1, api_2):
    status, read = eventually("the API reads the value back",
                              lambda: (lambda r: r if r[0] == 200 else None)(http("GET", f"{api}/api/v1/data/{key}")))
    expect(read["value"] == "John Doe", f"{api} read {read}")
eventually("both replicas reconnected to Redis",
           lambda: all(http("GET", f"{api}/api/v1/cache/test")[1]["redis_connected"] for api in (api_1, api_2)))

step("a log line reaches the Redis Stream with its pod metadata")
marker = f"e2e line {secrets.token_hex(6)}"
log_file = next(os.path.join(root, name) for root, _, names in os.walk(f"{stack}/node/pods") for name in names
                if name == "0.log")
with open(log_file, "a") as f:
    f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime())}.000000000Z stdout F {marker}\n")


def find_marker():
    # redis-cli --json: [[id, [field, value, ...]], ...], newest first.
    result = subprocess.run(["redis-cli", "-p", ports["REDIS_PORT"], "--json", "XREVRANGE", "logs", "+", "-",
                             "COUNT", "200"], env=redis_env, capture_output=True, text=True, timeout=10)
    for _, flat in json.loads(result.stdout or "[]"):
        fields = dict(zip(flat[::2], flat[1::2]))
        if fields.get("message") == marker:
            return fields
    return None


entry = eventually("the marker line in stream `logs`", find_marker)
expect(entry.get("namespace") == "app-v02" and entry.get("pod") == "demo-7d9f" and entry.get("container") == "demo",
       f"metadata {entry}")
expect(entry.get("node") == "local-node" and entry.get("stream") == "stdout", f"metadata {entry}")

step("cleanup: stale cache keys deleted, metrics in the Pushgateway and Prometheus")
for i in range(3):
    redis_cli("SET", f"cache:e2e-stale-{i}", "no ttl")
subprocess.run(["scripts/local-stack", "cleanup"], check=True, stdout=subprocess.DEVNULL)
expect(all(redis_cli("EXISTS", f"cache:e2e-stale-{i}") == "0" for i in range(3)), "stale keys still there")
with urllib.request.urlopen(f"{pushgateway}/metrics", timeout=10) as response:
    pushed = response.read().decode()
expect(any(line.startswith("cleanup_keys_deleted_total{") and 'job="cleanup"' in line for line in pushed.splitlines()),
       "cleanup_keys_deleted_total not in the Pushgateway")
result = eventually("cleanup_keys_deleted_total in Prometheus",
                    lambda: promql('cleanup_keys_deleted_total{job="cleanup"} >= 3')["data"]["result"])
print(f"    cleanup_keys_deleted_total = {result[0]['value'][1]}")

step("Prometheus: both API targets up, every rule loaded")
up = eventually("two API targets up",
                lambda: (lambda result: result if len(result) == 2 else None)(promql('up{job="api"} == 1')["data"]["result"]))
with urllib.request.urlopen(f"{prometheus}/api/v1/rules", timeout=10) as response:
    groups = json.loads(response.read())["data"]["groups"]
rules = [rule for group in groups for rule in group["rules"]]
expect(len(rules) >= 11 and all(rule["health"] == "ok" for rule in rules), f"rules: {rules}")
print(f"    {len(up)} API targets up, {len(rules)} rules healthy")

step("every PromQL expression of the Grafana dashboard")
dashboard = json.load(open("deploy/observability/grafana/app-v02.json"))
expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
for expr in expressions:
    answer = promql(expr)
    expect(answer["status"] == "success", f"{expr}: {answer.get('error')}")
print(f"    {len(expressions)} expressions evaluate without error")
step("redis_exporter: logged in to its Redis, and hands the password to no other address")
exporter = f"http://127.0.0.1:{ports['EXPORTER_PORT']}"
with urllib.request.urlopen(f"{exporter}/metrics", timeout=10) as response:
    expect("\nredis_up 1\n" in response.read().decode(), "the exporter cannot log in to Redis")
# A stand-in Redis named as /scrape's target records what the exporter sends.
listener = socket.create_server(("127.0.0.1", 0))
received = bytearray()


def record():
    connection, _ = listener.accept()
    connection.settimeout(1)
    with connection:
        try:
            while chunk := connection.recv(4096):
                received.extend(chunk)
        except TimeoutError:
            pass


recorder = threading.Thread(target=record, daemon=True)
recorder.start()
target = urllib.parse.quote(f"redis://127.0.0.1:{listener.getsockname()[1]}", safe="")
with urllib.request.urlopen(f"{exporter}/scrape?target={target}", timeout=30) as response:
    response.read()
recorder.join(timeout=10)
password = open(f"{stack}/redis-password").read().strip()
expect(received, "the exporter never connected to the named target")
expect(b"AUTH" not in received.upper() and password.encode() not in received,
       f"the exporter sent the Redis password to another address: {bytes(received)!r}")

step("local end-to-end checks passed")
