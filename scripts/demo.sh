#!/usr/bin/env bash
# make demo: send a real multipart mail through a local SMTP server with STARTTLS and AUTH.
# Usage: scripts/demo.sh PATH/TO/pigeon
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec /usr/bin/python3 "$here/demo.py" "$(realpath "${1:-build/pigeon}")"
