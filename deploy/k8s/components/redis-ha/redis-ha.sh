#!/bin/sh
# Places a data node in a Redis group run by Sentinel and writes both its
# configurations: what the node announces and, unless it is the primary,
# which primary it replicates (appended to REDIS_CONF), and the Sentinel
# beside it (SENTINEL_CONF, which Sentinel rewrites as the group changes).
# One script for the redis-ha component's init container and
# `REDIS_MODE=sentinel scripts/local-stack`.
#
# Usage: redis-ha.sh PASSWORD_FILE REDIS_CONF SENTINEL_CONF
# Environment (addresses are HOST:PORT, hosts may be DNS names):
#   HA_MASTER         the name the Sentinels know the primary by
#   HA_SELF           this data node, as the others reach it
#   HA_SENTINEL       this node's Sentinel, as the others reach it
#   HA_FIRST          the node that starts as primary when no Sentinel names one
#   HA_SENTINELS      every Sentinel of the group, separated by spaces
#   HA_QUORUM         Sentinels that must agree the primary is down (2)
#   HA_DOWN_AFTER_MS  how long a node is silent before it is down (5000)
#   HA_BIND           the Sentinel's listen address (all interfaces)
# The password (of the data nodes and of the Sentinels) is quoted as in
# redis-auth.sh, and written only into the two files (mode 600).
set -eu
password=$(cat "$1")
redis_conf=$2
sentinel_conf=$3
quoted=$(printf '%s' "$password" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')

# The primary is whichever node the Sentinels name now: a node that restarts
# after a failover rejoins as a replica of the new primary rather than as the
# primary it was. Only when no Sentinel answers (the group's first start, or
# every pod restarted at once) does HA_FIRST take the role.
primary=""
for sentinel in $HA_SENTINELS; do
  [ "$sentinel" = "$HA_SENTINEL" ] && continue
  reply=$(REDISCLI_AUTH="$password" timeout 3 redis-cli -h "${sentinel%:*}" -p "${sentinel##*:}" --raw \
    SENTINEL get-master-addr-by-name "$HA_MASTER" 2>/dev/null) || continue
  host=$(printf '%s\n' "$reply" | sed -n 1p)
  port=$(printf '%s\n' "$reply" | sed -n 2p)
  case "$port" in '' | *[!0-9]*) continue ;; esac
  primary="$host:$port"
  break
done
if [ -z "$primary" ]; then
  primary=$HA_FIRST
  echo "redis-ha: no Sentinel names a primary of $HA_MASTER; $primary starts as the primary"
else
  echo "redis-ha: the Sentinels name $primary as the primary of $HA_MASTER"
fi

umask 077
{
  # Replicas announce their stable name, not the pod's address, which
  # changes when the pod is rescheduled.
  echo "replica-announce-ip ${HA_SELF%:*}"
  echo "replica-announce-port ${HA_SELF##*:}"
  if [ "$primary" != "$HA_SELF" ]; then
    echo "replicaof ${primary%:*} ${primary##*:}"
  fi
  # A primary takes writes whether or not its replicas answer, as Redis
  # does by default; said here because the usual advice against a split
  # brain is to refuse them (docs/decisions.md, record 63). A primary that
  # refuses writes still serves reads, and the API's read of a value whose
  # write-through it refused returns the value before the write.
  echo "min-replicas-to-write 0"
} >>"$redis_conf"

{
  if [ -n "${HA_BIND:-}" ]; then echo "bind $HA_BIND"; fi
  echo "port ${HA_SENTINEL##*:}"
  echo "sentinel resolve-hostnames yes"
  echo "sentinel announce-hostnames yes"
  echo "sentinel announce-ip ${HA_SENTINEL%:*}"
  echo "sentinel announce-port ${HA_SENTINEL##*:}"
  echo "sentinel monitor $HA_MASTER ${primary%:*} ${primary##*:} ${HA_QUORUM:-2}"
  echo "sentinel down-after-milliseconds $HA_MASTER ${HA_DOWN_AFTER_MS:-5000}"
  echo "sentinel failover-timeout $HA_MASTER 60000"
  echo "sentinel parallel-syncs $HA_MASTER 1"
  printf 'sentinel auth-pass %s "%s"\n' "$HA_MASTER" "$quoted"
  printf 'requirepass "%s"\n' "$quoted"
} >"$sentinel_conf"
