# shellcheck shell=bash
# The `collector` scenario of scripts/bench: the log collector over
# 1,000,000 CRI lines, next to `cat` of the same files, with the
# Kubernetes metadata source off and on. Sourced by scripts/bench, whose
# globals (work, target, pids) it reads.
# shellcheck disable=SC2154

bench_collector() {
  cargo build --quiet --release -p log-collector
  local root="$work/collector" api_port
  python3 scripts/lib/gen_cri_logs.py "$root/pods" 20 1000000
  echo "== collector: $(du -sb "$root/pods" | cut -f1) bytes in 20 files"
  local start end
  start=$(date +%s.%N)
  cat "$root"/pods/*/*/*.log >/dev/null
  end=$(date +%s.%N)
  awk -v start="$start" -v end="$end" \
    'BEGIN {printf "cat (read ceiling): %.2f s, %.0f lines/s\n", end - start, 1e6 / (end - start)}'

  # The Kubernetes metadata source against a quiet cluster of 1,000 pods
  # (the 20 whose logs are read among them), off and on in turns; each
  # pair once to a file and once to /dev/null, which leaves out the
  # kernel's copy of every byte written (the lines with metadata are
  # longer).
  api_port=$(free_port)
  python3 scripts/lib/kube_api_fixture.py "$api_port" 1000 &
  pids+=("$!")
  local round output
  # Five rounds: a run takes about a second, its CPU time a few tenths.
  for round in 1 2 3 4 5; do
    for output in file null; do
      if [ $((round % 2)) = 1 ]; then
        collector_run "$root" "$round" off "$api_port" "$output"
        collector_run "$root" "$round" on "$api_port" "$output"
      else
        collector_run "$root" "$round" on "$api_port" "$output"
        collector_run "$root" "$round" off "$api_port" "$output"
      fi
    done
  done
  python3 scripts/lib/bench_collector.py summary "$root/results"
}

# collector_run ROOT ROUND off|on API_PORT file|null: the agent over every
# line once, from a fresh checkpoint, to a file or /dev/null, its result
# appended to ROOT/results.
collector_run() {
  local root=$1 round=$2 metadata=$3 api_port=$4 output=$5 port start end pid out
  local run="$1/run-$2-$3-$5"
  rm -rf "$run"
  mkdir -p "$run"
  out="$run/out.jsonl"
  [ "$output" = null ] && out=/dev/null
  port=$(free_port)
  start=$(date +%s.%N)
  NODE_NAME=bench COLLECTOR_PATHS="$root/pods/*/*/*.log" COLLECTOR_CHECKPOINT_DIR="$run/checkpoints" \
    COLLECTOR_SINK=file COLLECTOR_FILE_PATH="$out" COLLECTOR_PORT="$port" \
    COLLECTOR_BIND_ADDRESS=127.0.0.1 RUST_LOG=warn \
    COLLECTOR_KUBERNETES_METADATA="$([ "$metadata" = on ] && echo true || echo false)" \
    COLLECTOR_KUBERNETES_API_URL="http://127.0.0.1:$api_port" "$target/release/log-collector" &
  pid=$!
  pids+=("$pid")
  until [ "$(curl -fs "http://127.0.0.1:$port/metrics" | awk '/^log_collector_lines_shipped_total /{print $2}')" = "1000000" ]; do
    sleep 0.05
  done
  end=$(date +%s.%N)
  python3 scripts/lib/bench_collector.py run "$round" "$metadata" "$output" "$start" "$end" \
    "$(du -sb "$root/pods" | cut -f1)" 1000000 \
    "$(thread_cpu_seconds "$pid")" "$(peak_rss_mib "$pid")" "$(curl -fs "http://127.0.0.1:$port/metrics" |
      awk '/^log_collector_lines_without_metadata_total /{print $2}')" | tee -a "$root/results"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  rm -rf "$run"
}
