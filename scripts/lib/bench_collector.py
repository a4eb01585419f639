"""The result of `scripts/bench collector`: the agent's wall time, CPU time
and peak memory for the lines it shipped.

Usage: bench_collector.py START END BYTES LINES CPU_SECONDS PEAK_RSS_MIB
(START and END in Unix seconds; the agent's CPU time and peak RSS as
`scripts/bench` reads them from /proc).
"""
import sys


def main():
    start, end = float(sys.argv[1]), float(sys.argv[2])
    size, lines = int(sys.argv[3]), int(sys.argv[4])
    cpu, rss_mib = float(sys.argv[5]), float(sys.argv[6])
    wall = end - start
    print(f"log-collector: {wall:.2f} s wall (start to last line shipped), {lines / wall:,.0f} lines/s, "
          f"{size / wall / 1e6:.0f} MB/s")
    print(f"  CPU {cpu:.2f} s -> {lines / max(cpu, 0.01):,.0f} lines per CPU second (target >= 1,000,000); "
          f"peak RSS {rss_mib:.1f} MiB (target <= 32)")


if __name__ == "__main__":
    main()
