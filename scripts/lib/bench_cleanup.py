"""Results of `scripts/bench cleanup`: one line per run appended to a
results file (JSON lines), and the summary of the rounds.

Usage:
  bench_cleanup.py scan SCAN_OUTPUT WORST_MS ROUND RESULTS   a bare SCAN loop's run
  bench_cleanup.py job JOB_LOG WORST_MS ROUND RESULTS        a cleanup job's run
  bench_cleanup.py summary RESULTS                           the job against the loops around it
"""
import json
import statistics
import sys


def append(results, result):
    with open(results, "a") as out:
        print(json.dumps(result), file=out)


def scan(output, worst_ms, round_, results):
    with open(output) as lines:
        fields = dict(kv.split("=") for kv in lines.read().split())
    result = {"run": "scan", "round": int(round_), "worst_ms": int(worst_ms),
              "keys_per_second": float(fields["keys_per_second"])}
    append(results, result)
    print(f"bare SCAN MATCH cache:* COUNT 500 loop: {result['keys_per_second']:,.0f} keys/s, "
          f"worst redis latency {result['worst_ms']} ms")


def job(log, worst_ms, round_, results):
    with open(log) as lines:
        summary = next(json.loads(line) for line in lines if "cleanup summary" in line)
    result = {"run": "job", "round": int(round_), "worst_ms": int(worst_ms),
              "seconds": summary["duration_seconds"],
              "keys_per_second": summary["scanned"] / summary["duration_seconds"]}
    append(results, result)
    print(f"cleanup job, round {result['round']}: {result['seconds']:.2f} s, {summary['scanned']} keys "
          f"examined, {result['keys_per_second']:,.0f} keys/s; deleted {summary['keys_deleted']} "
          f"(no TTL {summary['deleted_no_ttl']}, record gone {summary['deleted_record_gone']}); "
          f"worst redis latency {result['worst_ms']} ms")


def summary(results):
    with open(results) as lines:
        runs = [json.loads(line) for line in lines]
    ceilings = {run["round"]: run for run in runs if run["run"] == "scan"}
    jobs = [run for run in runs if run["run"] == "job"]
    ratios = []
    print("--> summary (the job's rate against the mean of the bare SCAN loops just before and after it)")
    for run in jobs:
        before, after = ceilings[run["round"] - 1], ceilings[run["round"]]
        ceiling = (before["keys_per_second"] + after["keys_per_second"]) / 2
        ratios.append(100 * run["keys_per_second"] / ceiling)
        print(f"round {run['round']}: job {run['seconds']:.2f} s, {run['keys_per_second']:,.0f} keys/s = "
              f"{ratios[-1]:.0f}% of the bare SCAN rate ({ceiling:,.0f} keys/s); worst redis latency "
              f"{run['worst_ms']} ms during the job, {max(before['worst_ms'], after['worst_ms'])} ms during "
              f"the bare loops around it")
    print(f"rate: {min(ratios):.0f}-{max(ratios):.0f}% of the bare SCAN rate "
          f"(median {statistics.median(ratios):.0f}%); worst redis latency during the job: "
          f"{max(run['worst_ms'] for run in jobs)} ms")


if __name__ == "__main__":
    commands = {"scan": scan, "job": job, "summary": summary}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](*sys.argv[2:])
