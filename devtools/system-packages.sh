#!/usr/bin/env bash
# Debian packages the observability and browser tiers need, installed by the project (never by hand):
#   prometheus (prometheus + promtool: alert-rule unit tests, the dashboard test), chromium (the browser tier).
# Idempotent and quiet when everything is there; needs root (CI and this machine run as root) or sudo.
set -euo pipefail
want=()
command -v promtool >/dev/null 2>&1 || want+=(prometheus)
command -v prometheus >/dev/null 2>&1 || want+=(prometheus)
command -v chromium >/dev/null 2>&1 || want+=(chromium)
[ ${#want[@]} -eq 0 ] && exit 0
mapfile -t want < <(printf '%s\n' "${want[@]}" | sort -u)
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "system-packages: no apt-get here; install ${want[*]} with your package manager" >&2
  exit 1
fi
echo "==> installing Debian packages: ${want[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
# Debian's prometheus package starts a daemon on :9090 when an init system runs it; the tests start their own on
# free loopback ports, so nothing here depends on it.
