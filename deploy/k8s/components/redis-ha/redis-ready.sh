#!/bin/sh
# Readiness of a data node in a Sentinel group: the primary once it answers;
# a replica once its link to the primary is up (before its first sync it
# holds no data, or an old copy). Liveness stays a plain PING: a replica
# whose primary is gone is waiting for Sentinel, not broken.
set -eu
info=$(redis-cli info replication)
case "$info" in
  *role:master*) exit 0 ;;
  *master_link_status:up*) exit 0 ;;
esac
echo "replica not linked to its primary"
exit 1
