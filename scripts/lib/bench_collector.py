"""The result of `scripts/bench collector`: the agent's wall time, CPU time
and peak memory for the lines it shipped, from /proc while it still runs.

Usage: bench_collector.py PID START END BYTES LINES
"""
import os
import sys


def main():
    pid, start, end = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    size, lines = int(sys.argv[4]), int(sys.argv[5])
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/status") as status:
        rss_kib = int(next(line for line in status if line.startswith("VmHWM")).split()[1])
    wall = end - start
    print(f"log-collector: {wall:.2f} s wall (start to last line shipped), {lines / wall:,.0f} lines/s, "
          f"{size / wall / 1e6:.0f} MB/s")
    print(f"  CPU {cpu:.2f} s -> {lines / max(cpu, 0.01):,.0f} lines per CPU second (target >= 1,000,000); "
          f"peak RSS {rss_kib / 1024:.1f} MiB (target <= 32)")


if __name__ == "__main__":
    main()
