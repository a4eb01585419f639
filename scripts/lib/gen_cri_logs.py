"""Writes N CRI log lines (about 140 bytes each) spread over F files in the
kubelet layout: <root>/<ns>_<pod>_<uid>/<container>/0.log.

Usage: gen_cri_logs.py ROOT FILES LINES
"""
import os
import sys

root, files, lines = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
per_file = lines // files
for f in range(files):
    directory = os.path.join(root, f"bench_pod-{f}_uid-{f:04d}", "app")
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "0.log"), "w") as out:
        chunk = []
        for i in range(per_file):
            stream = "stderr" if i % 10 == 0 else "stdout"
            chunk.append(
                f"2026-11-26T07:{i // 60000 % 60:02d}:{i // 1000 % 60:02d}.{i % 1000:03d}456789Z {stream} F "
                f"level=info request_id={f:02d}-{i:08d} method=GET path=/api/v1/data/user:{i % 997} status=200 bytes=1024 ms=3\n"
            )
            if len(chunk) == 10000:
                out.write("".join(chunk))
                chunk = []
        out.write("".join(chunk))
