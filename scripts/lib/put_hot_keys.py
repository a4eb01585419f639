"""Writes the API benchmark's hot keys through the API, as clients would.

Usage: put_hot_keys.py BASE_URL COUNT
"""
import json
import sys
import urllib.request


def main():
    base, count = sys.argv[1], int(sys.argv[2])
    for i in range(count):
        body = json.dumps({"key": f"hot:{i}", "value": f"a hot value number {i}"}).encode()
        request = urllib.request.Request(base + "/api/v1/data", body, {"Content-Type": "application/json"})
        urllib.request.urlopen(request).read()


if __name__ == "__main__":
    main()
