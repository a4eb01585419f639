"""Summarises `scripts/bench api`: each round's ratios, then the ratios of
the best round of every scenario, against the targets of the cache issue.

Usage: bench_api_summary.py RESULTS REDIS_BENCHMARK_OUT
RESULTS holds `round|build|scenario|req/s|p50|p99|peak RSS MiB|api CPU us
per request` lines (build `current`, or `baseline` for the build given in
BENCH_BASELINE); the other file one redis-benchmark summary line per round.
The ratios and targets are the current build's; with a baseline, each
scenario's throughput and CPU per request are compared round by round.
"""
import re
import statistics
import sys

HEALTH = "GET /health"
L1_ON = "hot GET, L1 on"
L1_OFF = "hot GET, L1 off (Redis)"
MISS = "miss-heavy GET (store)"


def ratios(rows, redis_rps):
    """L1 on against /health, L1 off and miss-heavy against Redis, in %."""
    return (
        100 * rows[L1_ON][0] / rows[HEALTH][0],
        100 * rows[L1_OFF][0] / redis_rps,
        100 * rows[MISS][0] / redis_rps,
    )


def main():
    builds = {}
    for line in open(sys.argv[1]):
        round_, build, name, rps, p50, p99, rss, cpu_us = line.rstrip("\n").split("|")
        row = (float(rps), p50, p99, float(rss), float(cpu_us))
        builds.setdefault(build, {}).setdefault(int(round_), {})[name] = row
    rounds = builds["current"]
    redis = [
        float(re.search(r"([\d.]+) requests per second", line).group(1))
        for line in open(sys.argv[2])
    ]
    for (round_, rows), redis_rps in zip(sorted(rounds.items()), redis):
        on, off, miss = ratios(rows, redis_rps)
        print(
            f"round {round_}: L1 on {on:.0f}% of /health; L1 off {off:.0f}% and miss-heavy "
            f"{miss:.0f}% of redis-benchmark GET ({redis_rps:,.0f} req/s)"
        )
    best = {}
    for rows in rounds.values():
        for name, row in rows.items():
            if name not in best or row[0] > best[name][0]:
                best[name] = row
    print("best round of each scenario:")
    for name, (rps, p50, p99, rss, cpu_us) in best.items():
        print(
            f"  {name:<28} {rps:>10,.0f} req/s   p50 {p50:>8}   p99 {p99:>8}   "
            f"peak RSS {rss:.1f} MiB   api CPU {cpu_us:.1f} us/request"
        )
    print(f"  {'redis-benchmark GET':<28} {max(redis):>10,.0f} req/s")
    on, off, miss = ratios(best, max(redis))
    print(f"hot GET, L1 on:  {on:.0f}% of /health (target >= 80%)")
    print(f"hot GET, L1 off: {off:.0f}% of redis-benchmark GET, p99 {best[L1_OFF][2]} (targets >= 55%, p99 <= 3 ms)")
    print(f"miss-heavy GET:  {miss:.0f}% of redis-benchmark GET (target >= 20%)")
    hot_rss = max(best[L1_ON][3], best[L1_OFF][3])
    print(f"peak RSS under hot load: {hot_rss:.1f} MiB (target <= 20)")
    # Not a target: what the api itself spends per request, without wrk's
    # and Redis's share of the same cores.
    cpu = {name: min(r[name][4] for r in rounds.values()) for name in (HEALTH, L1_ON)}
    print(
        f"api CPU per request (least of the rounds): L1 hit {cpu[L1_ON]:.1f} us, "
        f"/health {cpu[HEALTH]:.1f} us ({100 * cpu[HEALTH] / cpu[L1_ON]:.0f}%)"
    )

    if "baseline" in builds:
        compare(rounds, builds["baseline"])


def compare(current, baseline):
    """Each scenario of the current build against the baseline's run of the
    same round (run next to it), in %: throughput and CPU per request."""
    print("current against baseline, round by round (throughput; api CPU per request):")
    for name in current[min(current)]:
        pairs = [(current[r][name], baseline[r][name]) for r in sorted(current) if r in baseline]
        throughput = [100 * now[0] / then[0] for now, then in pairs]
        cpu = [100 * now[4] / then[4] for now, then in pairs]
        print(
            f"  {name:<28} throughput {', '.join(f'{value:.0f}%' for value in throughput)} "
            f"(median {statistics.median(throughput):.0f}%); CPU per request "
            f"{', '.join(f'{value:.0f}%' for value in cpu)} (median {statistics.median(cpu):.0f}%)"
        )


if __name__ == "__main__":
    main()
