# shellcheck shell=bash
# The load of the `api` scenario of scripts/bench and what each run of it
# measures: wrk (closed loop, the CPU time per request of the server and of
# wrk, the machine's steal time), oha (open loop) and redis-benchmark.
# Sourced by scripts/bench, whose globals (work, api_pid, variant,
# redis_port, oha) it reads.
# shellcheck disable=SC2154

# CPU time (user + system) process $1 has used so far, in clock ticks.
cpu_ticks() {
  awk '{print $14 + $15}' "/proc/$1/stat"
}

# The machine's steal time so far and all its CPU time, in clock ticks:
# time the hypervisor gave the virtual CPUs' cores to other guests.
steal_and_total_ticks() {
  awk '$1 == "cpu" {print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat
}

# wrk at 64 connections against build $variant; prints "name req/s p50
# p99", the api's CPU time per request and wrk's, and keeps the line (with
# its round and build) in $work/results. The api's CPU time leaves out wrk
# and Redis, which share the cores; wrk's says how much of them it took.
# The machine's steal time over the run is printed too: a run that lost
# cores to other guests is slower for it.
run_wrk() {
  local round=$1 name=$2 url=$3 script=${4:-}
  local args=(-t 2 -c 64 -d "${WRK_SECONDS:-${BENCH_SECONDS:-15}}s" --latency)
  [ -n "$script" ] && args+=(-s "scripts/lib/wrk/$script")
  local ticks_before wrk_ticks steal_before total_before steal_after total_after
  ticks_before=$(cpu_ticks "$api_pid")
  read -r steal_before total_before < <(steal_and_total_ticks)
  # In a subshell of its own, whose reaped children are wrk alone: their
  # CPU time (fields 16 and 17 of its stat) is wrk's. errexit does not
  # reach into a command substitution: a failed wrk exits it by hand.
  wrk_ticks=$(
    wrk "${args[@]}" "$url" >"$work/wrk.out" || exit
    awk '{print $16 + $17}' "/proc/$BASHPID/stat"
  )
  read -r steal_after total_after < <(steal_and_total_ticks)
  local rps p50 p99 rss errors requests cpu_us wrk_us steal
  rps=$(awk '/^Requests\/sec/ {print $2}' "$work/wrk.out")
  p50=$(awk '$1 == "50%" {print $2}' "$work/wrk.out")
  p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.out")
  rss=$(peak_rss_mib "$api_pid")
  requests=$(awk '/requests in/ {print $1}' "$work/wrk.out")
  cpu_us=$(per_request_us "$(($(cpu_ticks "$api_pid") - ticks_before))" "$requests")
  wrk_us=$(per_request_us "$wrk_ticks" "$requests")
  steal=$(awk -v steal=$((steal_after - steal_before)) -v total=$((total_after - total_before)) \
    'BEGIN {printf "%.1f", (total > 0 ? 100 * steal / total : 0)}')
  errors=$(grep -E 'Non-2xx|Socket errors' "$work/wrk.out" | tr '\n' ' ' || true)
  if [ -n "${PER_THREAD:-}" ] && [ "$requests" -gt $((2 * PER_THREAD)) ]; then
    errors+="(some keys used twice: $requests requests over $((2 * PER_THREAD)) keys)"
  fi
  printf '%s|%s|%s|%s|%s|%s|%s|%s|%s\n' "$round" "$variant" "$name" "$rps" "$p50" "$p99" "$rss" \
    "$cpu_us" "$wrk_us" >>"$work/results"
  printf '  %-8s %-28s %10s req/s   p50 %8s   p99 %8s   peak RSS %s MiB   CPU us/request: api %s, wrk %s   steal %s%% %s\n' \
    "$variant" "$name" "$rps" "$p50" "$p99" "$rss" "$cpu_us" "$wrk_us" "$steal" "$errors"
}

# $1 clock ticks of CPU time over $2 requests, in microseconds per request.
per_request_us() {
  awk -v ticks="$1" -v hz="$(getconf CLK_TCK)" -v n="$2" 'BEGIN {printf "%.1f", ticks * 1e6 / hz / n}'
}

# BENCH_SECONDS split into $1 turns, in whole seconds (at least one).
turn_seconds() {
  local seconds=$((${BENCH_SECONDS:-15} / $1))
  echo $((seconds > 0 ? seconds : 1))
}

# redis-benchmark's GET (50 connections) on the api's Redis for a turn of
# about $2 seconds (it counts requests, not time, so it is sent 40,000 for
# each second); appends `round|build|req/s` to redis-benchmark.out.
redis_benchmark_turn() {
  local round=$1 seconds=$2 rps
  rps=$(redis-benchmark -p "$redis_port" -t get -c 50 -n $((seconds * 40000)) -q |
    tr '\r' '\n' | awk '/requests per second/ {print $2}')
  if [ -z "$rps" ]; then
    echo "redis-benchmark printed no GET rate" >&2
    exit 1
  fi
  printf '  %-8s %-28s %10s req/s\n' "$variant" "redis-benchmark GET" "$rps"
  echo "$round|$variant|$rps" >>"$work/redis-benchmark.out"
}

# oha at $5 requests/s for $6 seconds over hot:1 to hot:999 against the
# server on port $4, process $7; prints and keeps
# "round|turn|build|rate|p50|p99|p99.9|req/s" (latencies in ms) in
# $work/open-loop. The line printed also has the worst Redis latency
# sampled meanwhile, and how long the server's threads ran and waited for
# a core: a turn whose p99 jumps can then be told apart by whether Redis
# stalled in it too, the server had more to do, or the machine kept it
# from running.
run_oha() {
  local round=$1 turn=$2 build=$3 port=$4 rate=$5 seconds=$6 pid=$7 before after
  before=$(ran_and_waited_ns "$pid")
  while_sampling_latency "$redis_port" oha_load "$port" "$rate" "$seconds" >"$work/oha.json"
  after=$(ran_and_waited_ns "$pid")
  python3 scripts/lib/bench_api_summary.py open-loop "$work/oha.json" "$round" "$turn" "$build" \
    "$rate" "$work/open-loop" "$(cat "$work/latency")" "$before" "$after"
}

# oha's JSON report of $2 requests/s for $3 seconds over hot:1 to hot:999
# against the server on port $1.
oha_load() {
  "$oha" --no-tui --output-format json -z "${3}s" -q "$2" -c 64 \
    --latency-correction --rand-regex-url "http://127.0.0.1:$1/api/v1/data/hot:[1-9][0-9]{0,2}"
}
