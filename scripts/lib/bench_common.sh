# shellcheck shell=bash
# What the scenarios of scripts/bench share: their Redis servers, the
# latency sampler, the builds each round runs, and the memory and CPU time
# read from /proc. Sourced by scripts/bench, whose globals (work, target,
# variants, baseline, pids) it reads.
# shellcheck disable=SC2154

# Starts an empty Redis on port $1 with its files in $2; sets redis_pid.
start_redis() {
  local port=$1 dir=$2
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' \
    --appendonly no --logfile "$dir/redis.log" &
  redis_pid=$!
  pids+=("$redis_pid")
  wait_for_redis "$port"
}

# Stops the Redis on port $1, whose process is $2, and waits for it to
# exit, so that its memory is free again.
stop_redis() {
  redis-cli -p "$1" shutdown nosave >/dev/null 2>&1 || true
  wait "$2" 2>/dev/null || true
}

# Samples Redis latency (redis-cli --latency, 1 s windows) until $2 exists;
# prints the worst millisecond seen.
worst_latency_until() {
  local port=$1 stop_file=$2 worst=0 line max
  while [ ! -e "$stop_file" ]; do
    line=$(redis-cli -p "$port" --latency --raw </dev/null) || break
    max=$(echo "$line" | awk '{print $2}')
    [ "${max:-0}" -gt "$worst" ] && worst=$max
  done
  echo "$worst"
}

# Runs the command "${@:2}" while sampling Redis latency on port $1; the
# worst millisecond seen is left in $work/latency.
while_sampling_latency() {
  local port=$1 sampler
  shift
  rm -f "$work/stop"
  worst_latency_until "$port" "$work/stop" >"$work/latency" &
  sampler=$!
  "$@"
  touch "$work/stop"
  wait "$sampler"
}

# The builds in the order round $1 runs them: every other round starts with
# the baseline, so that neither build always runs first.
builds_of_round() {
  if [ $(($1 % 2)) -eq 0 ] && [ "${#variants[@]}" -gt 1 ]; then
    echo baseline current
  else
    echo "${variants[@]}"
  fi
}

# The binary of build $1 (current or baseline) of program $2.
binary_of() {
  if [ "$1" = baseline ]; then echo "$baseline/$2"; else echo "$target/release/$2"; fi
}

# Nanoseconds the threads of process $1 have run, and have waited runnable
# for a core, so far (the kernel's schedstat, summed over the threads
# alive now): "RAN WAITED".
ran_and_waited_ns() {
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ran += $1; waited += $2} END {printf "%.0f %.0f\n", ran, waited}'
}

# Process $1's peak resident memory so far, in MiB.
peak_rss_mib() {
  awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"
}

# CPU time process $1's threads have used so far, in seconds, from the
# scheduler's nanosecond counts: a collector run takes a few tenths of a
# second, and clock ticks (10 ms) are a few percent of that. Threads that
# have exited are not counted; the agent's live as long as it does.
thread_cpu_seconds() {
  cat /proc/"$1"/task/*/schedstat | awk '{ns += $1} END {printf "%.4f", ns / 1e9}'
}
