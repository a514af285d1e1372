#!/usr/bin/env bash
# Installs the servers the integration tests start (Debian packages), when missing:
# Redis, etcd, PostgreSQL and Prometheus (with promtool).
# The tests start their own instances on loopback with free ports; the packages'
# own services are stopped again so that they hold no port and no CPU.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
# Debian's prometheus package also has promtool: spec/prometheus.integration.spec.ts uses both.
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing ${need[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
for service in redis-server etcd postgresql prometheus; do $sudo service "$service" stop >/dev/null 2>&1 || true; done
