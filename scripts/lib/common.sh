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
  echo "==> installing ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
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
  local role=app_test password=app_test
  runuser -u postgres -- psql -p "$port" -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
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
