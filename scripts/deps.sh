#!/usr/bin/env bash
# Installs the Debian packages pigeon builds, tests and benchmarks with.
# Idempotent: installs only what is missing, and runs apt-get update only then.
set -euo pipefail
pkgs=(
  # build
  build-essential cmake pkg-config clang libclang-rt-14-dev
  # libraries the product links
  libssl-dev libsqlite3-dev libidn2-dev libc-ares-dev libcmark-gfm-dev libcmark-gfm-extensions-dev
  libgumbo-dev libpq-dev libsystemd-dev
  libsodium-dev
  # unit tests
  libcmocka-dev
  # independent peers the integration tests run against
  python3 python3-aiosmtpd python3-dkim python3-prometheus-client stunnel4 dnsmasq-base postfix
  python3-yaml
  openssl curl msmtp swaks postgresql dovecot-imapd dovecot-pop3d spamassassin
  # packaging (make deb)
  debhelper dpkg-dev lintian fakeroot
)
# Node.js for the npm test peers (tests/npm): whatever is on PATH, Debian's when none is.
command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm)
case "${1:-}" in
  --bench)
    pkgs+=(hyperfine valgrind wrk) ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0
echo "deps: installing ${missing[*]}" >&2
SUDO=; (( EUID != 0 )) && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
# postfix asks questions on install; answer them ahead of time (local only).
echo "postfix postfix/main_mailer_type select Local only" | $SUDO debconf-set-selections
echo "postfix postfix/mailname string localhost" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
