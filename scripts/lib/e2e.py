"""What the end-to-end checks over a local stack share: its ports and
password, HTTP and redis-cli calls, waiting, and failing with a message."""
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request


class Stack:
    """A running local stack (scripts/local-stack up) in directory `path`."""

    def __init__(self, path):
        self.path = path
        with open(f"{path}/ports.env") as f:
            self.ports = dict(line.strip().split("=", 1) for line in f if "=" in line)
        with open(f"{path}/redis-password") as f:
            self.redis_password = f.read().strip()
        self.redis_env = dict(os.environ, REDISCLI_AUTH=self.redis_password)

    def url(self, name):
        """http://127.0.0.1:PORT of the service whose port is NAME_PORT."""
        return f"http://127.0.0.1:{self.ports[f'{name}_PORT']}"

    def redis_cli(self, port, *args):
        """redis-cli --raw on `port`, logged in; its output, stripped."""
        result = subprocess.run(["redis-cli", "-p", str(port), "--raw", *args],
                                env=self.redis_env, capture_output=True, text=True, timeout=10)
        return result.stdout.strip()


def step(text):
    print(f"==> {text}", flush=True)


def expect(condition, message):
    if not condition:
        sys.exit(f"FAILED: {message}")


def http(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def eventually(what, check, seconds=30):
    deadline = time.time() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.time() > deadline:
            sys.exit(f"FAILED: not within {seconds} s: {what}")
        time.sleep(0.2)
