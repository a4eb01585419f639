#!/bin/sh
# Puts the Redis password where redis-server and redis_exporter read it, for
# any password of printable characters (quotes, backslashes, `$`, `#`,
# spaces included). One script for the StatefulSet's init container, Docker
# Compose and scripts/local-stack.
#
# Usage: redis-auth.sh PASSWORD_FILE REDIS_CONF [EXPORTER_FILE REDIS_URI]
#   appends `requirepass "..."` and `masterauth "..."` to REDIS_CONF (the
#   second is what a replica logs in to its primary with: unused by a single
#   server, needed by every node of a replicated group, since any of them
#   may become a replica after a failover); with EXPORTER_FILE, writes
#   redis_exporter's password map (`--redis.password-file`): the password for
#   REDIS_URI only, so that the exporter's /scrape?target= never hands it to
#   another address (as REDIS_PASSWORD would).
set -eu
password=$(cat "$1")
# redis.conf decodes escapes inside double quotes (\\, \", \xHH, \n ...) and
# JSON decodes \\ and \": escaping the backslash, then the double quote,
# gives text both read back as the password itself.
quoted=$(printf '%s' "$password" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')
umask 077
printf 'requirepass "%s"\nmasterauth "%s"\n' "$quoted" "$quoted" >>"$2"
if [ $# -ge 4 ]; then
  printf '{"%s": "%s"}\n' "$4" "$quoted" >"$3"
fi
