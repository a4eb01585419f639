# shellcheck shell=bash
# The `api` scenario of scripts/bench: the API and the bare baseline
# (crates/api/examples/bare.rs) in rounds, each scenario against what its
# target compares it with, in turns (docs/benchmarks.md). Sourced by
# scripts/bench, whose globals (work, target, variants, pids,
# worker_threads) it reads.
# shellcheck disable=SC2154

# The machines this runs on share their cores with neighbours, and one
# 15-second window can lose a third of its throughput to them. Every
# scenario therefore runs BENCH_ROUNDS times (default 3), interleaved; the
# summary prints every round's ratios and compares the best rounds.
bench_api() {
  local rounds=${BENCH_ROUNDS:-3}
  echo "==> api: release build, 1,000 hot keys, 64 connections, ${BENCH_SECONDS:-15} s per scenario, $rounds rounds, $worker_threads runtime thread(s) per server"
  cargo build -q --release -p api --bin api --example bare
  # Read by oha_load (bench_load.sh).
  # shellcheck disable=SC2034
  oha=$(ensure_oha)
  ensure_commands psql postgresql-client
  start_postgres
  mkdir -p "$work/api"
  redis_port=$(free_port)
  start_redis "$redis_port" "$work/api/redis"
  local port
  port=$(free_port)
  : >"$work/results"
  : >"$work/redis-benchmark.out"

  # The first start creates the store; the hot keys go in through the API.
  variant=current start_api "$port" CACHE_L1_TTL_MS=1000
  python3 scripts/lib/put_hot_keys.py "http://127.0.0.1:$port" 1000
  stop_api
  python3 scripts/lib/seed_store.py "$work/api/store.db" miss: \
    $((rounds * ${#variants[@]} * 2 * keys_per_thread))
  local round
  for round in $(seq "$rounds"); do
    api_round "$round" "$port"
  done
  python3 scripts/lib/bench_api_summary.py summary "$work/results" "$work/redis-benchmark.out" \
    "$work/open-loop"
}

# One round: every scenario once, with each build. The miss-heavy scenario
# of each round and build reads keys of its own, which no earlier run has
# put into Redis.
api_round() {
  local round=$1 port=$2 build run
  echo "--> round $round"
  run=$(((round - 1) * ${#variants[@]}))
  for build in $(builds_of_round "$round"); do
    variant=$build api_scenarios "$port" "$round" "$run"
    run=$((run + 1))
  done
  beside_bare "$port" "$round"
  bare_post "$port" "$round"
  open_loop "$port" "$round"
}

# Keys each wrk thread of a miss-heavy run reads: more than a thread gets
# through in BENCH_SECONDS (30,000 a second), so none is read twice;
# run_wrk says so if one was.
keys_per_thread=$((${BENCH_SECONDS:-15} * 30000))

# The same for a thread of a new-key POST run, whose writes into the bare
# baseline (one Redis SET each) go twice as fast as the api's reads.
post_keys_per_thread=$((2 * keys_per_thread))

# POST runs so far, each of which writes a range of keys of its own.
post_runs=0

# Starts the release api with extra VAR=value settings; sets api_pid.
start_api() {
  local port=$1
  shift
  env PORT="$port" BIND_ADDRESS=127.0.0.1 REDIS_HOST=127.0.0.1 REDIS_PORT="$redis_port" \
    DATABASE_URL="sqlite://$work/api/store.db" RUST_LOG=warn SHUTDOWN_DRAIN_SECONDS=0 \
    TOKIO_WORKER_THREADS="$worker_threads" "$@" \
    "$(binary_of "$variant" api)" >>"$work/api/api.log" 2>&1 &
  api_pid=$!
  pids+=("$api_pid")
  wait_for_http "http://127.0.0.1:$port/ready"
  wait_for_redis_in_use "http://127.0.0.1:$port"
}

stop_api() {
  kill "$api_pid"
  wait "$api_pid" 2>/dev/null || true
}

# Starts the bare baseline (crates/api/examples/bare.rs) on port $1; sets
# api_pid, which the measurements read.
start_bare() {
  PORT=$1 REDIS_HOST=127.0.0.1 REDIS_PORT="$redis_port" TOKIO_WORKER_THREADS="$worker_threads" \
    "$target/release/examples/bare" \
    >>"$work/api/bare.log" 2>&1 &
  api_pid=$!
  pids+=("$api_pid")
  wait_for_http "http://127.0.0.1:$1/health"
}

# Every scenario once, with build $variant; run $3 (from 0) picks the keys
# of the miss-heavy scenario.
api_scenarios() {
  local port=$1 round=$2 run=$3
  local base="http://127.0.0.1:$port"
  start_api "$port" CACHE_L1_TTL_MS=1000
  # The pair with a target between them runs in turns (RATIO_TURNS each,
  # default 5, a third of BENCH_SECONDS long; which goes first alternates),
  # so that a slow spell of the machine weighs on both alike
  # (docs/decisions.md, records 41 and 50).
  local turn health_beside_l1="GET /health, L1 process"
  for turn in $(seq "${RATIO_TURNS:-5}"); do
    if [ $((turn % 2)) -eq 1 ]; then
      WRK_SECONDS=$(turn_seconds 3) run_wrk "$round" "$health_beside_l1" "$base/health"
      WRK_SECONDS=$(turn_seconds 3) run_wrk "$round" "hot GET, L1 on" "$base" hot_get.lua
    else
      WRK_SECONDS=$(turn_seconds 3) run_wrk "$round" "hot GET, L1 on" "$base" hot_get.lua
      WRK_SECONDS=$(turn_seconds 3) run_wrk "$round" "$health_beside_l1" "$base/health"
    fi
  done
  # The miss-heavy target is a ratio to redis-benchmark's GET, which runs
  # in turns with it too (three each, a third of BENCH_SECONDS long). Each
  # turn reads keys of its own, a third of the run's range.
  local miss_keys=$((keys_per_thread / 3))
  for turn in 1 2 3; do
    if [ $((turn % 2)) -eq 0 ]; then
      redis_benchmark_turn "$round" "$(turn_seconds 3)"
    fi
    WRK_SECONDS=$(turn_seconds 3) PER_THREAD=$miss_keys \
      OFFSET=$((run * 2 * keys_per_thread + (turn - 1) * 2 * miss_keys)) \
      run_wrk "$round" "miss-heavy GET (store)" "$base" miss_get.lua
    if [ $((turn % 2)) -eq 1 ]; then
      redis_benchmark_turn "$round" "$(turn_seconds 3)"
    fi
  done
  stop_api
  # Writes last, in a process that then lives past the cache outbox's
  # retention and clears its entries, as a running replica does: the next
  # process would otherwise start by replaying tens of thousands of them,
  # and its peak RSS would show that instead of the load it is measured
  # under. The writes go to a Redis of their own, started empty for each
  # round and build and stopped after them: in one Redis for all rounds,
  # each round's new keys would go into a larger one than the last, on
  # memory new to it (docs/decisions.md, record 56).
  local reads_redis_port=$redis_port writes_redis_pid
  redis_port=$(free_port)
  start_redis "$redis_port" "$work/api/redis-writes"
  writes_redis_pid=$redis_pid
  local retention=2
  start_api "$port" CACHE_L1_TTL_MS=1000 CACHE_OUTBOX_RETENTION_SECONDS=$retention
  # The POST targets are ratios to /health too. Each of the two POST
  # scenarios runs in three turns, a third of BENCH_SECONDS long, the two
  # in alternation, and /health runs before every turn and after the last:
  # the mean of those /health turns is the ratios' /health. The supervisor
  # clears entries older than the retention once a second: after each POST
  # turn the process is left that long and two seconds more, so that a
  # /health turn measures /health alone.
  local settle=$((retention + 2)) health_beside_post="GET /health, POST process"
  for turn in 1 2 3; do
    WRK_SECONDS=$(turn_seconds 3) run_wrk "$round" "$health_beside_post" "$base/health"
    WRK_SECONDS=$(turn_seconds 3) post_new_keys "$round" "POST" "$base"
    sleep "$settle"
    WRK_SECONDS=$(turn_seconds 3) run_wrk "$round" "$health_beside_post" "$base/health"
    WRK_SECONDS=$(turn_seconds 3) VALUE_BYTES=1024 post_new_keys "$round" "POST 1 KiB" "$base"
    sleep "$settle"
  done
  WRK_SECONDS=$(turn_seconds 3) run_wrk "$round" "$health_beside_post" "$base/health"
  run_wrk "$round" "POST, rewrites" "$base" post_rewrite.lua
  sleep "$settle"
  stop_api
  # The same writes on PostgreSQL, into a database of their own.
  local database="bench_post_${round}_${variant}"
  postgres_sql "DROP DATABASE IF EXISTS $database" "CREATE DATABASE $database"
  start_api "$port" CACHE_L1_TTL_MS=1000 DATABASE_URL="${TEST_POSTGRES_URL%/*}/$database"
  post_new_keys "$round" "POST (PostgreSQL)" "$base"
  stop_api
  postgres_sql "DROP DATABASE $database"
  stop_redis "$redis_port" "$writes_redis_pid"
  redis_port=$reads_redis_port
}

# wrk POSTing keys no run has written before (post.lua): every write
# creates its record. Arguments as run_wrk's, without the script.
post_new_keys() {
  PER_THREAD=$post_keys_per_thread OFFSET=$((post_runs * 2 * post_keys_per_thread)) \
    run_wrk "$@" post.lua
  post_runs=$((post_runs + 1))
}

# The scenarios with a target against the bare baseline, `GET /health` and
# the hot GET with L1 off, with every build of round $2 (L1 off) and the
# baseline up at once, the load going to them in turns (RATIO_TURNS each,
# default 5, a fifth of BENCH_SECONDS long; each turn takes the servers
# in the reverse order of the turn before): a slow spell of the machine
# weighs on all of them alike (docs/decisions.md, record 50).
beside_bare() {
  local port=$1 round=$2 turns=${RATIO_TURNS:-5} turn order scenario build base
  local -a servers=(bare)
  local -A port_of=([bare]="$(free_port)") pid_of=()
  start_bare "${port_of[bare]}"
  pid_of[bare]=$api_pid
  for build in $(builds_of_round "$round"); do
    port_of[$build]=$(free_port)
    variant=$build start_api "${port_of[$build]}" CACHE_L1_TTL_MS=0
    pid_of[$build]=$api_pid
    servers+=("$build")
  done
  for turn in $(seq "$turns"); do
    if [ $((turn % 2)) -eq 1 ]; then
      order=("${servers[@]}")
    else
      mapfile -t order < <(printf '%s\n' "${servers[@]}" | tac)
    fi
    for scenario in health hot; do
      for build in "${order[@]}"; do
        base="http://127.0.0.1:${port_of[$build]}"
        api_pid=${pid_of[$build]}
        if [ "$scenario" = health ]; then
          variant=$build WRK_SECONDS=$(turn_seconds "$turns") run_wrk "$round" "GET /health" "$base/health"
        else
          variant=$build WRK_SECONDS=$(turn_seconds "$turns") \
            run_wrk "$round" "hot GET, L1 off (Redis)" "$base" hot_get.lua
        fi
      done
    done
  done
  for build in "${servers[@]}"; do
    api_pid=${pid_of[$build]}
    stop_api
  done
}

# The bare baseline's writes (one Redis SET each), reported beside the
# api's POSTs.
bare_post() {
  local port=$1 round=$2 variant=bare
  start_bare "$port"
  post_new_keys "$round" "POST" "http://127.0.0.1:$port"
  stop_api
}

# Open-loop latency of hot GETs read from Redis: the bare baseline and the
# api with L1 off, each at a fixed arrival rate of half the throughput the
# baseline reached in this round's closed-loop run (the mean of its turns,
# as the summary counts it). oha measures each request from when it was
# due to be sent, so a stall counts against every request it delayed (no
# coordinated omission). Both servers run throughout, and the load goes to
# them in turns (OPEN_LOOP_TURNS each, default 5, together as long as one
# closed-loop scenario; which goes first alternates): a stall of the
# machine lands in one turn of one server, and the summary takes the
# median turn of each.
open_loop() {
  local port=$1 round=$2 turn build seconds rate
  local turns=${OPEN_LOOP_TURNS:-5}
  local -A port_of=([current]="$port" [bare]="$(free_port)") pid_of=()
  rate=$(python3 scripts/lib/bench_api_summary.py throughput "$work/results" "$round" bare \
    "hot GET, L1 off (Redis)")
  rate=$((rate / 2))
  seconds=$(turn_seconds "$turns")
  start_bare "${port_of[bare]}"
  pid_of[bare]=$api_pid
  variant=current start_api "$port" CACHE_L1_TTL_MS=0
  pid_of[current]=$api_pid
  # A second of the same load on each, unmeasured: the first turn of a
  # process just started was often its slowest.
  for build in bare current; do
    oha_load "${port_of[$build]}" "$rate" 1 >/dev/null
  done
  for turn in $(seq "$turns"); do
    for build in $(if [ $((turn % 2)) -eq 1 ]; then echo bare current; else echo current bare; fi); do
      run_oha "$round" "$turn" "$build" "${port_of[$build]}" "$rate" "$seconds" "${pid_of[$build]}"
    done
  done
  stop_api
  api_pid=${pid_of[bare]}
  stop_api
}

# Runs each of the statements "$@" in PostgreSQL's `postgres` database.
postgres_sql() {
  local statement args=()
  for statement in "$@"; do args+=(-c "$statement"); done
  PGOPTIONS="-c client_min_messages=warning" psql "$TEST_POSTGRES_URL" -q -v ON_ERROR_STOP=1 \
    "${args[@]}" >/dev/null
}
