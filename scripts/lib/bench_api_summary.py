"""Results of `scripts/bench api`.

Usage:
  bench_api_summary.py open-loop OHA_JSON ROUND TURN BUILD RATE OUT REDIS_WORST_MS BEFORE AFTER
      one turn of an open-loop run (oha's JSON output): prints it with
      the worst Redis latency seen during it and the time the server's
      threads ran and waited for a core (BEFORE and AFTER: "RAN WAITED"
      nanoseconds at its start and end), and appends
      `round|turn|build|rate|p50|p99|p99.9|req/s` (latencies in ms) to OUT
  bench_api_summary.py throughput RESULTS ROUND BUILD SCENARIO
      the requests/s SCENARIO of BUILD reached in ROUND, as the summary
      counts it (the mean of its turns), in whole requests
  bench_api_summary.py summary RESULTS REDIS_BENCHMARK_OUT OPEN_LOOP
      every round's ratios, the best round of each scenario, the targets

RESULTS holds `round|build|scenario|req/s|p50|p99|peak RSS MiB|api CPU us
per request|wrk CPU us per request` lines, one for each run (a scenario
that runs in turns has a line for each turn); build is `current`, `bare` (the
bare baseline, crates/api/examples/bare.rs) or `baseline` (the build given
in BENCH_BASELINE). REDIS_BENCHMARK_OUT holds `round|build|req/s` lines,
one for each turn of redis-benchmark's GET. Each target's ratio is taken
round by round and summarised by its median. The two sides of every
target's ratio run in turns, side by side: hot GET with L1 on against
/health in its process; POSTs against /health in the POST process;
/health and the hot GET with L1 off against the bare baseline's, the
servers up at once; the miss-heavy GET against redis-benchmark. The
comparisons of other scenarios with the bare baseline (POST) and with the
other build run minutes apart.
"""
import json
import re
import statistics
import sys

# /health in turns with the bare baseline's (and with the hot GET, L1 off).
HEALTH = "GET /health"
# /health in turns with the hot GET with L1 on, in its process.
HEALTH_BESIDE_L1 = "GET /health, L1 process"
# /health before, between and after the SQLite POST loads, in their process.
HEALTH_BESIDE_POST = "GET /health, POST process"
L1_ON = "hot GET, L1 on"
L1_OFF = "hot GET, L1 off (Redis)"
MISS = "miss-heavy GET (store)"
POST = "POST"
POST_1K = "POST 1 KiB"
POST_REWRITES = "POST, rewrites"
POST_PG = "POST (PostgreSQL)"


def percent(values):
    return ", ".join(f"{value:.0f}%" for value in values)


def open_loop(oha_json, round_, turn, build, rate, out, redis_worst_ms, before, after):
    with open(oha_json) as source:
        report = json.load(source)
    percentiles = report["latencyPercentiles"]
    p50, p99, p999 = (1000 * percentiles[name] for name in ("p50", "p99", "p99.9"))
    achieved = report["summary"]["requestsPerSec"]
    # Every key of the run exists: anything but a 200 is a failure, except
    # the requests still in flight when the run's time was up.
    statuses = report["statusCodeDistribution"]
    failed = sum(count for status, count in statuses.items() if status != "200")
    failed += sum(count for error, count in report["errorDistribution"].items()
                  if "deadline" not in error)
    ran, waited = (int(now) - int(then) for now, then in zip(after.split(), before.split()))
    with open(out, "a") as lines:
        print(f"{round_}|{turn}|{build}|{rate}|{p50:.3f}|{p99:.3f}|{p999:.3f}|{achieved:.0f}",
              file=lines)
    print(f"  {build:<8} open loop at {int(rate):,} req/s, turn {turn}: p50 {p50:.2f} ms   "
          f"p99 {p99:.2f} ms   p99.9 {p999:.2f} ms   ({achieved:,.0f} req/s, {failed} not answered 200; "
          f"Redis' worst {redis_worst_ms} ms; server ran {ran / 1e9:.2f} s, "
          f"waited {waited / 1e9:.2f} s for a core)")


def read_results(path):
    runs = {}
    with open(path) as lines:
        for line in lines:
            round_, build, name, rps, p50, p99, rss, cpu_us, wrk_us = line.rstrip("\n").split("|")
            row = (float(rps), p50, p99, float(rss), float(cpu_us), float(wrk_us))
            runs.setdefault(build, {}).setdefault(int(round_), {}).setdefault(name, []).append(row)
    return {build: {round_: {name: combined(turns) for name, turns in rows.items()}
                    for round_, rows in rounds.items()}
            for build, rounds in runs.items()}


def combined(turns):
    """One row for a scenario run in turns of equal length: the mean
    throughput, the turns' worst p50 and p99, the peak RSS, and the CPU per
    request over all the requests (each turn weighted by its throughput,
    which is its requests over the same time)."""
    if len(turns) == 1:
        return turns[0]
    requests = sum(turn[0] for turn in turns)
    per_request = lambda field: sum(turn[0] * turn[field] for turn in turns) / requests
    worst = lambda field: max((turn[field] for turn in turns), key=milliseconds)
    return (requests / len(turns), worst(1), worst(2), max(turn[3] for turn in turns),
            per_request(4), per_request(5))


def redis_benchmark(path):
    """The current build's redis-benchmark GET turns of each round: their
    mean requests/s by round."""
    turns = {}
    with open(path) as lines:
        for line in lines:
            round_, build, rps = line.rstrip("\n").split("|")
            if build == "current":
                turns.setdefault(int(round_), []).append(float(rps))
    return {round_: statistics.mean(rates) for round_, rates in turns.items()}


def throughput(results, round_, build, scenario):
    try:
        row = read_results(results)[build][int(round_)][scenario]
    except KeyError:
        sys.exit(f"no {scenario!r} of {build} in round {round_} in {results}")
    print(int(row[0]))


def milliseconds(text):
    """wrk's latency (`850.00us`, `2.27ms`, `1.02s`) in ms."""
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def summary(results, redis_out, open_loop_out):
    builds = read_results(results)
    rounds = builds["current"]
    redis = redis_benchmark(redis_out)
    for round_, rows in sorted(rounds.items()):
        redis_rps = redis[round_]
        print(f"round {round_}: L1 on {100 * rows[L1_ON][0] / rows[HEALTH_BESIDE_L1][0]:.0f}% of /health; "
              f"L1 off {100 * rows[L1_OFF][0] / redis_rps:.0f}% and miss-heavy "
              f"{100 * rows[MISS][0] / redis_rps:.0f}% of redis-benchmark GET ({redis_rps:,.0f} req/s)")
    best = {}
    for rows in rounds.values():
        for name, row in rows.items():
            if name not in best or row[0] > best[name][0]:
                best[name] = row
    print("best round of each scenario:")
    for name, (rps, p50, p99, rss, cpu_us, wrk_us) in best.items():
        print(f"  {name:<28} {rps:>10,.0f} req/s   p50 {p50:>8}   p99 {p99:>8}   "
              f"peak RSS {rss:.1f} MiB   CPU us/request: api {cpu_us:.1f}, wrk {wrk_us:.1f}")
    print(f"  {'redis-benchmark GET':<28} {max(redis.values()):>10,.0f} req/s")
    # Not a target: what the api itself spends per request, without wrk's
    # and Redis's share of the same cores.
    cpu = {name: min(r[name][4] for r in rounds.values()) for name in (HEALTH_BESIDE_L1, L1_ON)}
    print(f"api CPU per request (least of the rounds): L1 hit {cpu[L1_ON]:.1f} us, "
          f"/health {cpu[HEALTH_BESIDE_L1]:.1f} us ({100 * cpu[HEALTH_BESIDE_L1] / cpu[L1_ON]:.0f}%)")

    # One decimal: a ratio a few tenths under its target must not print as
    # the target.
    print("targets (median over the rounds of each round's ratio):")
    own_by_round = lambda a, b: [100 * r[a][0] / r[b][0] for _, r in sorted(rounds.items())]
    own = lambda a, b: statistics.median(own_by_round(a, b))
    by_round = lambda a, b: "/".join(f"{ratio:.1f}" for ratio in own_by_round(a, b))
    if "bare" in builds:
        bare = builds["bare"]
        against_bare = lambda name: statistics.median(
            100 * rounds[r][name][0] / bare[r][name][0] for r in rounds if r in bare)
        print(f"  GET /health:       {against_bare(HEALTH):.1f}% of the bare baseline's (target >= 90%)")
        print(f"  hot GET, L1 off:   {against_bare(L1_OFF):.1f}% of the bare baseline's hot GET (target >= 85%)")
    print(f"  hot GET, L1 on:    {own(L1_ON, HEALTH_BESIDE_L1):.1f}% of own /health (rounds "
          f"{by_round(L1_ON, HEALTH_BESIDE_L1)}; target >= 95%; "
          f"{l1_ceiling(rounds):.0f}% if an L1 hit cost the api no more than /health)")
    worst_p99 = lambda name: max(milliseconds(r[name][2]) for r in rounds.values())
    # The POSTs' /health is the one run beside them, in their process.
    for name in (POST, POST_1K):
        print(f"  {name + ':':<19}{own(name, HEALTH_BESIDE_POST):.1f}% of own /health (rounds "
              f"{by_round(name, HEALTH_BESIDE_POST)}; target >= 25%), "
              f"worst p99 {worst_p99(name):.1f} ms (target <= 20 ms)")
    print(f"  {POST_REWRITES + ':':<19}{own(POST_REWRITES, HEALTH_BESIDE_POST):.0f}% of own /health, "
          f"worst p99 {worst_p99(POST_REWRITES):.1f} ms (reported; the targets are on new keys)")
    pg_rps = statistics.median(r[POST_PG][0] for r in rounds.values())
    print(f"  {POST_PG + ':':<19}{own(POST_PG, HEALTH_BESIDE_POST):.0f}% of own /health, median "
          f"{pg_rps:,.0f} req/s, worst p99 {worst_p99(POST_PG):.1f} ms (reported, no target)")
    miss = statistics.median(100 * rounds[r][MISS][0] / redis[r] for r in rounds)
    print(f"  miss-heavy GET:    {miss:.1f}% of redis-benchmark GET (target >= 30%)")
    hot_rss = max(max(r[L1_ON][3], r[L1_OFF][3], r[HEALTH][3], r[HEALTH_BESIDE_L1][3])
                  for r in rounds.values())
    posts = (POST, POST_1K, POST_REWRITES, POST_PG, HEALTH_BESIDE_POST)
    post_rss = max(r[name][3] for r in rounds.values() for name in posts)
    print(f"  peak RSS:          {hot_rss:.1f} MiB under the hot loads (target <= 20), "
          f"{post_rss:.1f} MiB under POST (target <= 64)")
    open_loop_summary(open_loop_out)
    if "bare" in builds:
        compare(rounds, builds["bare"], "the bare baseline")
    if "baseline" in builds:
        compare(rounds, builds["baseline"], "baseline")


def l1_ceiling(rounds):
    """The L1-on ratio a hit as cheap for the api as /health would reach,
    median over the rounds. With the cores saturated, throughput goes as
    the inverse of the CPU every process spends per request, and wrk spends
    more on a hot GET (a longer response to read) than on /health."""
    health = HEALTH_BESIDE_L1
    return statistics.median(
        100 * (r[health][5] + r[health][4]) / (r[L1_ON][5] + r[health][4]) for r in rounds.values())


# The share of its rate an open-loop turn must reach to have measured
# latency at that rate.
HELD_RATE = 0.9


def open_loop_summary(path):
    """Each round's median turn of each server, and the api's p99 over the
    bare baseline's: a stall of the machine lands in one turn of one
    server, and the median turn leaves it out."""
    try:
        with open(path) as lines:
            runs = [line.rstrip("\n").split("|") for line in lines]
    except FileNotFoundError:
        return
    p99 = {}
    short = []
    for round_, turn, build, rate, p50, p99_ms, p999, achieved in runs:
        p99.setdefault(int(round_), {}).setdefault(build, []).append(float(p99_ms))
        if float(achieved) < HELD_RATE * float(rate):
            short.append(f"round {round_} turn {turn} {build} ({float(achieved):,.0f} of {int(rate):,} req/s)")
    if short:
        # A turn that could not keep the rate measured a saturated server:
        # its latencies are queueing, not the server's at that rate.
        print(f"  open loop: the rate was not held in {'; '.join(short)}; those turns' "
              "latencies are a saturated server's")
    ratios = []
    for round_, latency in sorted(p99.items()):
        if "current" not in latency or "bare" not in latency:
            continue
        median = {build: statistics.median(turns) for build, turns in latency.items()}
        ratios.append(median["current"] / median["bare"])
        turns = lambda build: ", ".join(f"{ms:.1f}" for ms in latency[build])
        print(f"  open loop, round {round_}: p99 by turn (ms): api {turns('current')}; "
              f"bare {turns('bare')}; medians {median['current']:.2f} / {median['bare']:.2f} "
              f"= {ratios[-1]:.2f}x")
    if ratios:
        print(f"  open loop, L1 off: api p99 {', '.join(f'{ratio:.2f}x' for ratio in ratios)} the bare "
              f"baseline's at the same rate (median {statistics.median(ratios):.2f}x; target <= 1.5x)")


def compare(current, other, label):
    """Each scenario of the current build against `other`'s run in the same
    round, in %: throughput and CPU per request."""
    print(f"current against {label}, round by round (throughput; api CPU per request):")
    for name in current[min(current)]:
        pairs = [(current[r][name], other[r][name]) for r in sorted(current)
                 if r in other and name in other[r]]
        if not pairs:
            continue
        throughput = [100 * now[0] / then[0] for now, then in pairs]
        cpu = [100 * now[4] / then[4] for now, then in pairs]
        print(f"  {name:<28} throughput {percent(throughput)} (median {statistics.median(throughput):.0f}%); "
              f"CPU per request {percent(cpu)} (median {statistics.median(cpu):.0f}%)")


if __name__ == "__main__":
    commands = {"open-loop": open_loop, "throughput": throughput, "summary": summary}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](*sys.argv[2:])
