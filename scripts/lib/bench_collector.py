"""The results of `scripts/bench collector`: each run's wall time, CPU time
and peak memory for the lines it shipped, and the metadata source's cost as
the ratio of lines per CPU second with it on to off, round by round.

Usage: bench_collector.py run ROUND off|on START END BYTES LINES CPU_SECONDS PEAK_RSS_MIB ENRICHED
         (START and END in Unix seconds; the agent's CPU time and peak RSS
         as `scripts/bench` reads them from /proc; ENRICHED: lines shipped
         with Kubernetes metadata). Prints one line, which `summary` reads.
       bench_collector.py summary RESULTS_FILE
"""
import statistics
import sys


def run(args):
    round_, metadata = args[0], args[1]
    start, end = float(args[2]), float(args[3])
    size, lines = int(args[4]), int(args[5])
    cpu, rss_mib, enriched = float(args[6]), float(args[7]), int(args[8])
    wall = end - start
    per_cpu = lines / max(cpu, 0.01)
    print(f"round {round_} metadata {metadata}: {wall:.2f} s wall, {lines / wall:,.0f} lines/s, "
          f"{size / wall / 1e6:.0f} MB/s; CPU {cpu:.2f} s -> {per_cpu:,.0f} lines per CPU second; "
          f"peak RSS {rss_mib:.1f} MiB; {enriched:,} lines with metadata")


def summary(path):
    per_cpu = {}
    rss = {"off": [], "on": []}
    for line in open(path):
        words = line.split()
        round_, metadata = words[1], words[3].rstrip(":")
        per_cpu[(round_, metadata)] = float(line.split("-> ")[1].split()[0].replace(",", ""))
        rss[metadata].append(float(line.split("peak RSS ")[1].split()[0]))
    rounds = sorted({round_ for round_, _ in per_cpu})
    ratios = [per_cpu[(r, "on")] / per_cpu[(r, "off")] for r in rounds if (r, "on") in per_cpu and (r, "off") in per_cpu]
    off = statistics.median(per_cpu[(r, "off")] for r in rounds)
    print(f"lines per CPU second, metadata off: median {off:,.0f} (target >= 1,000,000)")
    print(f"metadata on / off, lines per CPU second, by round: {' '.join(f'{r:.0%}' for r in ratios)}; "
          f"median {statistics.median(ratios):.0%} (target >= 90 %)")
    print(f"peak RSS: off {max(rss['off']):.1f} MiB, on {max(rss['on']):.1f} MiB (target <= 32)")


if __name__ == "__main__":
    {"run": run, "summary": lambda args: summary(args[0])}[sys.argv[1]](sys.argv[2:])
