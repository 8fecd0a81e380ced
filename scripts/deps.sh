#!/usr/bin/env bash
# Installs the Debian packages pigeon builds, tests and benchmarks with.
# Idempotent: installs only what is missing, and runs apt-get update only then.
set -euo pipefail
pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev
      libssl-dev libsqlite3-dev libidn2-dev libc-ares-dev libmicrohttpd-dev
      libcmark-dev libgumbo-dev libcmocka-dev
      python3 python3-aiosmtpd python3-dkim python3-prometheus-client stunnel4 dnsmasq-base postfix
      openssl curl msmtp swaks)
case "${1:-}" in
  --bench)
    pkgs+=(hyperfine valgrind)
    # nodemailer runs on whatever Node.js is on PATH; Debian's only when there is none.
    command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm) ;;
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
