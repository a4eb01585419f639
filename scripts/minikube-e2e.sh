#!/usr/bin/env bash
# The whole system on a fresh minikube, checked the way the spec checks it.
# Needs minikube, Docker and kubectl (none of which CI machines have; CI runs
# scripts/check-deploy instead).
#
#   1. starts minikube (profile app-v02, two nodes, Calico so that
#      NetworkPolicies are enforced),
#   2. builds the three images and loads them into minikube,
#   3. applies deploy/k8s/overlays/minikube and waits for every rollout,
#   4. checks: the API through NodePort 30080 (write, read twice: cached),
#      the persistence check (SET in redis-0, delete the pod, GET after it is
#      back), a manual run of the CronJob, one collector pod per node, and
#      that a pod other than the API or cleanup cannot reach Redis.
#
# REDIS_MODE=sentinel adds components/redis-ha: Redis as a primary, two
# replicas and three Sentinels, and a failover (SENTINEL FAILOVER) after
# which a replica must be the primary, the API's writes must reach it, and
# the old primary must serve as its replica.
#
# Usage: scripts/minikube-e2e.sh [--keep]   (--keep leaves the cluster up)
set -euo pipefail
cd "$(dirname "$0")/.."

profile="${MINIKUBE_PROFILE:-app-v02}"
nodes="${MINIKUBE_NODES:-2}"
namespace=app-v02
keep=false
[ "${1:-}" = "--keep" ] && keep=true

for command in minikube docker kubectl curl python3; do
  command -v "$command" >/dev/null || { echo "minikube-e2e: $command is required" >&2; exit 2; }
done

step() { echo "==> $*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }
kube() { kubectl --context "$profile" -n "$namespace" "$@"; }
cleanup_cluster() {
  if [ "$keep" = false ]; then minikube delete -p "$profile" >/dev/null 2>&1 || true; fi
}
trap cleanup_cluster EXIT

step "minikube start ($nodes nodes, Calico)"
minikube start -p "$profile" --nodes="$nodes" --cni=calico --wait=all

step "build and load the images"
for image in api log-collector cleanup; do
  docker build -f deploy/docker/Dockerfile --target "$image" -t "app-v02/$image:0.2.0" .
  minikube -p "$profile" image load "app-v02/$image:0.2.0"
done

overlay=deploy/k8s/overlays/minikube
if [ "${REDIS_MODE:-single}" = sentinel ]; then
  overlay=$(mktemp -d deploy/k8s/.combos.XXXXXX)
  trap 'rm -rf "$overlay"; cleanup_cluster' EXIT
  printf '%s\n' "apiVersion: kustomize.config.k8s.io/v1beta1" "kind: Kustomization" "namespace: $namespace" \
    "resources: [../overlays/minikube]" "components: [../components/redis-ha]" >"$overlay/kustomization.yaml"
fi
step "kubectl apply -k $overlay"
kubectl --context "$profile" apply -k "$overlay"
kube rollout status statefulset/redis --timeout=300s
kube rollout status statefulset/postgres --timeout=300s
kube rollout status deployment/api --timeout=300s
kube rollout status daemonset/log-collector --timeout=300s

url="http://$(minikube -p "$profile" ip):30080"
step "the API through NodePort 30080: $url"
curl -fsS "$url/health" | grep -q '"ok"' || fail "/health"
curl -fsS -X POST "$url/api/v1/data" -H 'content-type: application/json' \
  -d '{"key":"user:123","value":"John Doe","ttl":3600}' >/dev/null || fail "POST /api/v1/data"
curl -fsS "$url/api/v1/data/user:123" >/dev/null
read_back=$(curl -fsS "$url/api/v1/data/user:123")
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["value"]=="John Doe" and d["cached"], d' "$read_back" ||
  fail "second read not cached: $read_back"
curl -fsS "$url/api/v1/cache/test" | grep -q '"redis_connected":true' || fail "the API does not reach Redis"

step "persistence: SET, delete redis-0, GET"
kube exec redis-0 -c redis -- redis-cli SET test hello | grep -q OK || fail "SET"
kube delete pod redis-0 --wait=true
kube wait --for=condition=Ready pod/redis-0 --timeout=300s
[ "$(kube exec redis-0 -c redis -- redis-cli GET test)" = "hello" ] || fail "the value did not survive the pod"
if [ "${REDIS_MODE:-single}" = sentinel ]; then
  step "a failover: a replica promoted, the API writing to it, the old primary its replica"
  sentinel() { kube exec redis-1 -c sentinel -- redis-cli -p 26379 "$@"; }
  old=$(sentinel sentinel get-master-addr-by-name app-v02 | head -n 1)
  sentinel sentinel failover app-v02 | grep -q OK || fail "SENTINEL FAILOVER"
  for _ in $(seq 60); do
    new=$(sentinel sentinel get-master-addr-by-name app-v02 | head -n 1)
    [ "$new" != "$old" ] && break
    sleep 1
  done
  [ "$new" != "$old" ] || fail "no replica promoted: the Sentinels still name $old"
  curl -fsS -X POST "$url/api/v1/data" -H 'content-type: application/json' \
    -d '{"key":"after:failover","value":"v"}' >/dev/null || fail "POST after the failover"
  for _ in $(seq 30); do
    [ "$(kube exec "${new%%.*}" -c redis -- redis-cli exists cache:after:failover)" = 1 ] && break
    sleep 1
  done
  [ "$(kube exec "${new%%.*}" -c redis -- redis-cli exists cache:after:failover)" = 1 ] ||
    fail "the API's write did not reach the new primary ${new%%.*}"
  [ "$(kube exec "${old%%.*}" -c redis -- redis-cli role | head -n 1)" = slave ] ||
    fail "the old primary ${old%%.*} is not a replica"
fi

step "a manual run of the CronJob"
kube delete job cleanup-e2e --ignore-not-found
kube create job cleanup-e2e --from=cronjob/cleanup
kube wait --for=condition=complete job/cleanup-e2e --timeout=300s || fail "cleanup job did not complete"
kube logs job/cleanup-e2e | grep -q "cleanup done, deleted" || fail "cleanup did not report"

step "one collector pod per node"
node_count=$(kubectl --context "$profile" get nodes --no-headers | wc -l)
ready=$(kube get daemonset log-collector -o jsonpath='{.status.numberReady}')
[ "$ready" = "$node_count" ] || fail "$ready collector pods ready for $node_count nodes"
kube logs daemonset/log-collector --tail=200 | grep -q "log collector started on node" || fail "collector logs"

step "NetworkPolicy: another pod cannot reach Redis"
answer=$(kube run np-probe --image=redis:7.4-alpine --restart=Never --rm -i --quiet \
  --labels=app.kubernetes.io/name=np-probe --command -- \
  sh -c 'timeout 5 redis-cli -h redis-service -p 6379 ping 2>&1 || true')
case "$answer" in
  *PONG* | *NOAUTH*) fail "a pod outside the policy reached Redis: $answer" ;;
esac

step "all minikube checks passed"
