"""Results of `scripts/bench cleanup`: one line per run appended to a
results file (JSON lines), and the summary of the rounds.

Usage:
  bench_cleanup.py scan SCAN_OUTPUT WORST_MS SLOT RESULTS    bare SCAN loop number SLOT
  bench_cleanup.py job JOB_LOG WORST_MS ROUND RESULTS BUILD SLOT
                                                 a run of BUILD's job right after loop SLOT
  bench_cleanup.py summary RESULTS               each job against the loops around it, and
                                                 the builds against each other
"""
import json
import statistics
import sys


def append(results, result):
    with open(results, "a") as out:
        print(json.dumps(result), file=out)


def scan(output, worst_ms, slot, results):
    with open(output) as lines:
        fields = dict(kv.split("=") for kv in lines.read().split())
    result = {"run": "scan", "slot": int(slot), "worst_ms": int(worst_ms),
              "keys_per_second": float(fields["keys_per_second"])}
    append(results, result)
    print(f"bare SCAN MATCH cache:* COUNT 500 loop: {result['keys_per_second']:,.0f} keys/s, "
          f"worst redis latency {result['worst_ms']} ms")


def job(log, worst_ms, round_, results, build, slot):
    with open(log) as lines:
        summary = next(json.loads(line) for line in lines if "cleanup summary" in line)
    result = {"run": "job", "round": int(round_), "build": build, "slot": int(slot),
              "worst_ms": int(worst_ms),
              "seconds": summary["duration_seconds"],
              "keys_per_second": summary["scanned"] / summary["duration_seconds"]}
    append(results, result)
    print(f"cleanup job ({build}), round {result['round']}: {result['seconds']:.2f} s, {summary['scanned']} keys "
          f"examined, {result['keys_per_second']:,.0f} keys/s; deleted {summary['keys_deleted']} "
          f"(no TTL {summary['deleted_no_ttl']}, record gone {summary['deleted_record_gone']}); "
          f"worst redis latency {result['worst_ms']} ms")


def summary(results):
    with open(results) as lines:
        runs = [json.loads(line) for line in lines]
    ceilings = {run["slot"]: run for run in runs if run["run"] == "scan"}
    jobs = [run for run in runs if run["run"] == "job"]
    ratios = {}
    print("--> summary (each job's rate against the mean of the bare SCAN loops just before and after it)")
    for run in jobs:
        before, after = ceilings[run["slot"]], ceilings[run["slot"] + 1]
        ceiling = (before["keys_per_second"] + after["keys_per_second"]) / 2
        ratio = 100 * run["keys_per_second"] / ceiling
        ratios.setdefault(run["build"], {})[run["round"]] = ratio
        print(f"round {run['round']} ({run['build']}): job {run['seconds']:.2f} s, "
              f"{run['keys_per_second']:,.0f} keys/s = {ratio:.0f}% of the bare SCAN rate "
              f"({ceiling:,.0f} keys/s); worst redis latency {run['worst_ms']} ms during the job, "
              f"{max(before['worst_ms'], after['worst_ms'])} ms during the bare loops around it")
    for build, by_round in ratios.items():
        values = list(by_round.values())
        worst = max(run["worst_ms"] for run in jobs if run["build"] == build)
        print(f"{build}: {min(values):.0f}-{max(values):.0f}% of the bare SCAN rate "
              f"(median {statistics.median(values):.0f}%); worst redis latency during the job: {worst} ms")
    if "baseline" in ratios:
        current, baseline = ratios["current"], ratios["baseline"]
        relative = [100 * current[r] / baseline[r] for r in sorted(current) if r in baseline]
        print(f"current against baseline, round by round: "
              f"{', '.join(f'{value:.0f}%' for value in relative)} "
              f"(median {statistics.median(relative):.0f}%)")


if __name__ == "__main__":
    commands = {"scan": scan, "job": job, "summary": summary}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](*sys.argv[2:])
