#!/usr/bin/env bash
# Checks against real peers: wrangler's local D1 (export byte-identity and cross-imports), and
# Debian's AWS CLI and rclone against the emulator's S3 endpoint, an independent Python
# decrypter of the sealed format, the Prometheus client's parser on `cfdr status`, wrangler's own
# export through `cfdr import`, and systemd-analyze on the schedule's units. Installs what it needs:
# wrangler 4.86.0 from npm into .peers/ (or $CFDR_PEERS_DIR), awscli, rclone, sqlite3 and systemd
# (for systemd-analyze) from Debian,
# Python's cryptography (for the independent decrypter of sealed artifacts) and the Prometheus
# client (its text-format parser, for `cfdr status --format prometheus`) from PyPI.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
peers=${CFDR_PEERS_DIR:-$root/.peers}
mkdir -p "$peers"

missing=()
[ -x /usr/bin/aws ] || missing+=(awscli)
command -v rclone >/dev/null || missing+=(rclone)
command -v sqlite3 >/dev/null || missing+=(sqlite3)
command -v systemd-analyze >/dev/null || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
  echo "peers: installing ${missing[*]} from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! python3 -c 'import cryptography' 2>/dev/null; then
  echo "peers: installing Python's cryptography from PyPI"
  python3 -m pip install --quiet cryptography
fi

if ! python3 -c 'import prometheus_client' 2>/dev/null; then
  echo "peers: installing the Prometheus Python client (its text-format parser) from PyPI"
  python3 -m pip install --quiet prometheus_client==0.21.1
fi

wrangler="$peers/wrangler/node_modules/.bin/wrangler"
if ! "$wrangler" --version 2>/dev/null | grep -q '4\.86\.0'; then
  echo "peers: installing wrangler 4.86.0 from npm"
  npm install --silent --no-audit --no-fund --prefix "$peers/wrangler" wrangler@4.86.0 >/dev/null
fi

cargo build --quiet --bin cfdr
export WRANGLER_SEND_METRICS=false
unset AWS_CA_BUNDLE
python3 "$root/scripts/conformance.py" --cfdr "$root/target/debug/cfdr" --wrangler "$wrangler" --work "$peers/work"
