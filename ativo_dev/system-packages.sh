#!/usr/bin/env bash
# Debian packages some tests need, installed by the project (never by hand):
#   prometheus  prometheus + promtool: the alert-rule unit tests (make test) and the dashboard test (make test-browser)
#   chromium    the browser tier (make test-browser)
#   wrk         the HTTP load generator bench/serve.py drives both inference servers with (make bench-smoke)
# Usage: ativo_dev/system-packages.sh [prometheus] [chromium] [wrk]   (prometheus and chromium when none is named)
# Idempotent and quiet when everything is there. Needs apt-get and root (or sudo). Where it cannot install, it says
# so and exits 0, and the tests that need the tool skip, saying why; with ATIVO_REQUIRE_TOOLS=1 (CI) it fails.
set -euo pipefail
wanted=("$@")
[ ${#wanted[@]} -eq 0 ] && wanted=(prometheus chromium)
missing=()
for pkg in "${wanted[@]}"; do
  case "$pkg" in
    prometheus) { command -v promtool && command -v prometheus; } >/dev/null 2>&1 || missing+=(prometheus) ;;
    chromium) command -v chromium >/dev/null 2>&1 || missing+=(chromium) ;;
    wrk) command -v wrk >/dev/null 2>&1 || missing+=(wrk) ;;
    *) echo "system-packages: unknown package '$pkg' (prometheus, chromium, wrk)" >&2; exit 2 ;;
  esac
done
[ ${#missing[@]} -eq 0 ] && exit 0
cannot() {
  if [ "${ATIVO_REQUIRE_TOOLS:-}" = "1" ]; then
    echo "system-packages: $1 (ATIVO_REQUIRE_TOOLS=1, so this fails)" >&2
    exit 1
  fi
  echo "system-packages: $1; the tests that need ${missing[*]} will skip" >&2
  exit 0
}
command -v apt-get >/dev/null 2>&1 || cannot "no apt-get here: install ${missing[*]} with your package manager"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null || cannot "not root and no password-less sudo"
  sudo="sudo -n"
fi
echo "==> installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null || cannot "apt-get update failed"
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || cannot "apt-get install failed"
# Debian's prometheus package may start a daemon on :9090 where an init system runs; the tests start their own on
# free loopback ports, so nothing depends on it.
