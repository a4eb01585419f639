# shellcheck shell=bash
# The `cleanup` scenario of scripts/bench: the cleanup job over 1,000,000
# keys, each round between two runs of a bare SCAN loop. Sourced by
# scripts/bench, whose globals (work, target) it reads.
# shellcheck disable=SC2154

# The machine's speed drifts by tens of percent within a minute, so the job
# runs BENCH_ROUNDS times (default 3), each between two runs of the bare
# SCAN loop, and its rate is compared with the mean of those two; with a
# baseline, each round runs both builds, each between two bare loops.
bench_cleanup() {
  local rounds=${BENCH_ROUNDS:-3}
  echo "==> cleanup: 1,000,000 keys (800,000 cache: with TTL and a live record, 100,000 cache: without TTL, 100,000 session: without TTL), $rounds rounds"
  cargo build -q --release -p cleanup --bin cleanup --example scan_ceiling
  local port db
  port=$(free_port)
  db="$work/cleanup/store.db"
  start_redis "$port" "$work/cleanup"
  # The first (dry) run creates the schema.
  REDIS_HOST=127.0.0.1 REDIS_PORT=$port DATABASE_URL="sqlite://$db" RUST_LOG=warn \
    "$target/release/cleanup" --dry-run >/dev/null
  python3 scripts/lib/seed_cleanup.py "$db" 800000 "$work/keys.resp" "$work/restore.resp"
  redis-cli -p "$port" --pipe <"$work/keys.resp" | tail -n 1
  redis-cli -p "$port" --pipe <"$work/restore.resp" | tail -n 1
  echo "keys in Redis: $(redis-cli -p "$port" dbsize)"

  local round variant slot=0
  : >"$work/cleanup.results"
  cleanup_ceiling "$port" "$slot"
  for round in $(seq "$rounds"); do
    for variant in $(builds_of_round "$round"); do
      cleanup_job "$port" "$db" "$round" "$variant" "$slot"
      slot=$((slot + 1))
      cleanup_ceiling "$port" "$slot"
      redis-cli -p "$port" --pipe <"$work/restore.resp" >/dev/null
    done
  done
  python3 scripts/lib/bench_cleanup.py summary "$work/cleanup.results"
}

# One run of the bare SCAN loop, with the latency sampler; appends a result
# line for slot $2 (the loops are numbered in the order they run) to
# $work/cleanup.results. COUNT 500, not the job's 100:
# the loop is the ceiling a client can reach (docs/benchmarks.md says why).
cleanup_ceiling() {
  local port=$1 slot=$2
  while_sampling_latency "$port" \
    "$target/release/examples/scan_ceiling" "$port" 'cache:*' 500 >"$work/scan.out"
  python3 scripts/lib/bench_cleanup.py scan "$work/scan.out" "$(cat "$work/latency")" "$slot" \
    "$work/cleanup.results"
}

# One run of the cleanup job of build $4, with the latency sampler, right
# after bare loop $5; appends a result line for round $3 to
# $work/cleanup.results.
cleanup_job() {
  local port=$1 db=$2 round=$3 variant=$4 slot=$5
  while_sampling_latency "$port" env REDIS_HOST=127.0.0.1 REDIS_PORT="$port" \
    DATABASE_URL="sqlite://$db" "$(binary_of "$variant" cleanup)" >"$work/cleanup.out"
  python3 scripts/lib/bench_cleanup.py job "$work/cleanup.out" "$(cat "$work/latency")" "$round" \
    "$work/cleanup.results" "$variant" "$slot"
  echo "keys left: $(redis-cli -p "$port" dbsize) (expect 900,001 less the lock: 900,000)"
}
