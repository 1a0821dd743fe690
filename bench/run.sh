#!/usr/bin/env bash
# cfdr's benchmarks, each figure beside a real peer's from the same run (these machines are
# noisy: compare the ratios). Installs restic, rclone, sqlite3 and age from Debian if missing.
#   bash bench/run.sh [SIZE_MIB]      (default 1024: a 1 GiB file)
# Three tables: the repository (seal, verify, list), the console (first frame, key latency
# during a verify and during a D1 restore on the emulator; a Worker rollback beside wrangler's), the backup engines (bench/engines.py: KV, R2, D1 against their peers),
# and the engines at scale by simulation (bench/scale.py: a million KV keys against the rate limit
# in a compressed window, a 1 GiB D1 database against sqlite3 .dump, an unchanged bucket of a
# million R2 objects beside rclone's listing of it), and the first build on a fresh clone
# (bench/first-build.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
size_mib=${1:-1024}
missing=()
command -v restic >/dev/null || missing+=(restic)
command -v rclone >/dev/null || missing+=(rclone)
command -v sqlite3 >/dev/null || missing+=(sqlite3)
command -v age >/dev/null || missing+=(age)
command -v openssl >/dev/null || missing+=(openssl)
[ -x /usr/bin/time ] || missing+=(time)
command -v sha256sum >/dev/null || missing+=(coreutils)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# wrangler 4.86.0 (the D1 restore's third peer), where scripts/peers.sh keeps it.
peers=${CFDR_PEERS_DIR:-$root/.peers}
wrangler="$peers/wrangler/node_modules/.bin/wrangler"
if ! "$wrangler" --version 2>/dev/null | grep -q '4\.86\.0'; then
  npm install --silent --no-audit --no-fund --prefix "$peers/wrangler" wrangler@4.86.0 >/dev/null
fi
cd "$root"
cargo build --release --quiet --bin cfdr --example bench
bin="$root/target/release"
work=$(mktemp -d "${TMPDIR:-/tmp}/cfdr-bench-XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "preparing a ${size_mib} MiB file of random bytes…" >&2
head -c "$((size_mib * 1024 * 1024))" /dev/urandom > "$work/data.bin"
sync

now() { python3 -c 'import time; print(time.perf_counter())'; }
# The machine's limit for a seal, from OpenSSL's primitives (1 MiB buffers), and the one the
# crates cfdr uses set (bench primitives).
speed() { openssl speed -evp "$1" -bytes 1048576 -seconds 3 2>/dev/null | awk 'END { sub(/k$/, "", $NF); print $NF * 1000 / 1e9 }'; }
ossl_sha=$(speed sha256)
ossl_aes=$(speed aes-256-gcm)
crates=$("$bin/examples/bench" primitives)
seal=$("$bin/examples/bench" seal "$work/data.bin" "$work/repo")
verify=$("$bin/examples/bench" verify "$work/repo")
# What storing the file alone costs: reading it and writing a copy beside it; and writing its
# size alone (zeros, so the kernel's cost of storing the bytes is all there is).
t4=$(now); cp "$work/data.bin" "$work/copy.bin"; t5=$(now); rm -f "$work/copy.bin"
store=$( { /usr/bin/time -f "%e %S %U" dd if=/dev/zero of="$work/store.bin" bs=1M count="$size_mib" status=none; } 2>&1 )
rm -f "$work/store.bin"
t0=$(now); openssl dgst -sha256 "$work/data.bin" >/dev/null; t1=$(now)
export RESTIC_PASSWORD=bench RESTIC_REPOSITORY="$work/restic"
restic init --quiet >/dev/null
t2=$(now); restic backup --quiet "$work/data.bin" >/dev/null; t3=$(now)
age-keygen -o "$work/age.key" 2>/dev/null
t6=$(now); age -e -i "$work/age.key" -o "$work/data.age" "$work/data.bin"; t7=$(now); rm -f "$work/data.age"

"$bin/examples/bench" catalog "$work/list-repo" 10000 >/dev/null
list_times=()
for _ in 1 2 3 4 5; do
  a=$(now)
  CFDR_REPO="$work/list-repo" CFDR_KEY=$(printf '2a%.0s' $(seq 32)) CFDR_CONFIG=/nonexistent "$bin/cfdr" backups list >/dev/null
  b=$(now)
  list_times+=("$(python3 -c "print($b - $a)")")
done

# The console on the repository holding the 1 GiB backup plus 10,000 catalogued ones.
"$bin/examples/bench" catalog "$work/repo" 10000 >/dev/null
console=$("$bin/examples/bench" console "$bin/cfdr" "$work/repo")
# The console restoring the demo's tasks-prod over itself, every D1 request slowed to 300 ms.
restore=$("$bin/examples/bench" console-restore "$bin/cfdr")
# A Worker rolled back on the demo account, 50 ms on every request, beside wrangler rollback.
rollback=$("$bin/examples/bench" worker-rollback "$bin/cfdr" "$wrangler")

python3 - "$size_mib" "$seal" "$verify" "$crates" "$ossl_sha" "$ossl_aes" "$store" "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" "$t6" "$t7" "${list_times[@]}" <<'PY'
import json, sys, statistics
size_mib = int(sys.argv[1]); seal = json.loads(sys.argv[2]); verify = json.loads(sys.argv[3])
crates = json.loads(sys.argv[4]); ossl_sha, ossl_aes = float(sys.argv[5]), float(sys.argv[6])
store_cpu = sum(map(float, sys.argv[7].split()[1:3]))
t0, t1, t2, t3, t4, t5, t6, t7 = map(float, sys.argv[8:16]); lists = sorted(map(float, sys.argv[16:]))
gb = size_mib * 1024 * 1024 / 1e9
dgst, restic, cp, age = t1 - t0, t3 - t2, t5 - t4, t7 - t6
def limit(sha, aes):
    """Two cores: AES-GCM plus one SHA-256 on one, the other SHA-256 on the other."""
    return min(1 / (1 / aes + 1 / sha), sha)
lim = limit(ossl_sha, ossl_aes)
# cfdr's pipeline hands the cipher to whichever core is free: its ceiling is all the work over both.
lim_crates = 2 / (2 / crates["sha256_gbps"] + 1 / crates["aes_gcm_gbps"])
seal_gbps, verify_gbps = gb / seal["secs"], gb / verify["secs"]
# A seal does a verify's work (the same cipher and hashes) and stores the bytes too: on two cores
# it cannot beat both cores over the sum, whatever the code.
ceiling = gb / ((verify["cpu"] + store_cpu) / 2)
ratio_ceiling = verify["cpu"] / (verify["cpu"] + store_cpu)
rows = [
    ("two-core limit, OpenSSL's primitives", f"{lim:.2f} GB/s", f"SHA-256 {ossl_sha:.2f}, AES-GCM {ossl_aes:.2f} GB/s", ""),
    ("  cfdr's crates, cipher shared by the cores", f"{lim_crates:.2f} GB/s", f"SHA-256 {crates['sha256_gbps']:.2f}, AES-GCM {crates['aes_gcm_gbps']:.2f} GB/s", ""),
    ("seal (encrypt + 2x SHA-256 + store)", f"{seal_gbps:.2f} GB/s", f"{seal_gbps / lim:.0%} of the limit, {seal_gbps / lim_crates:.0%} of the crates'", ""),
    ("  cores busy (CPU time / wall time)", f"{seal['cpu'] / seal['secs']:.2f}", f"cp of the file alone {cp:.2f} s", ""),
    ("  storing the bytes alone (dd of zeros)", f"{store_cpu:.2f} CPU-s", "the kernel's work, which a verify does not do", ""),
    ("  ceiling: 2 cores over verify's + storing", f"{ceiling:.2f} GB/s", f"seal reaches {seal_gbps / ceiling:.0%} of it", ""),
    ("  beside age -e (ChaCha20-Poly1305, 1 core)", f"{seal['secs']:.2f} s", f"age -e {age:.2f} s", f"{age / seal['secs']:.2f}x"),
    ("  beside restic backup", f"{seal['secs']:.2f} s", f"restic {restic:.2f} s", f"{restic / seal['secs']:.2f}x"),
    ("full verify (decrypt + 2x SHA-256)", f"{verify_gbps:.2f} GB/s", f"{verify_gbps / lim:.0%} of the limit, {verify_gbps / lim_crates:.0%} of the crates'", ""),
    ("  cores busy (CPU time / wall time)", f"{verify['cpu'] / verify['secs']:.2f}", "", ""),
    ("  beside openssl dgst -sha256 (hash only)", f"{verify['secs']:.2f} s", f"openssl dgst {dgst:.2f} s", f"{dgst / verify['secs']:.2f}x"),
    ("seal's throughput / verify's", f"{seal_gbps / verify_gbps:.2f}", f"aim >= 0.9; ceiling {ratio_ceiling:.2f} with storing", ""),
    ("peak memory, seal", f"{seal['peak_rss'] / 2**20:.0f} MiB", "", ""),
    ("peak memory, verify", f"{verify['peak_rss'] / 2**20:.0f} MiB", "", ""),
    ("backups list, 10,000 backups (median of 5)", f"{statistics.median(lists) * 1000:.0f} ms", "", ""),
]
print(f"\n{'measure':<46} {'cfdr':>10}  {'peer / reference (same run)':<44} {'ratio':>8}")
for r in rows:
    print(f"{r[0]:<46} {r[1]:>10}  {r[2]:<44} {r[3]:>8}")
print(f"\n{size_mib} MiB file; ratios are the peer's time over cfdr's (above 1: cfdr was faster).")
PY

python3 - "$console" "$restore" "$rollback" <<'PY'
import json, sys
c = json.loads(sys.argv[1]); r = json.loads(sys.argv[2]); w = json.loads(sys.argv[3])
print(f"\n{'console (real binary in a pseudo-terminal)':<52} {'cfdr':>10}  {'aim':<10}")
print(f"{'first frame (title drawn)':<52} {c['first_paint_ms']:>7.0f} ms  ")
print(f"{'first frame with the inventory, 10,001 backups':<52} {c['first_inventory_ms']:>7.0f} ms  {'<= 150 ms':<10}")
print(f"{'key-to-frame, median, during a full verify':<52} {c['key_median_ms']:>7.1f} ms  {'<= 16 ms':<10}")
print(f"{'key-to-frame, 95th percentile':<52} {c['key_p95_ms']:>7.1f} ms  ")
print(f"({c['samples']} keys over {c['verifies']} verify run(s) of the largest backup)")
print(f"{'key-to-frame, median, during a D1 restore':<52} {r['key_median_ms']:>7.1f} ms  {'<= 16 ms':<10}")
print(f"{'key-to-frame, 95th percentile':<52} {r['key_p95_ms']:>7.1f} ms  ")
print(f"({r['samples']} keys while the console restored tasks-prod, 300 ms a D1 request)")
peer = (f"wrangler rollback {w['wrangler_secs']:.2f} s, {w['wrangler_requests']} requests, verifies nothing"
        if 'wrangler_secs' in w else f"wrangler rollback failed: {w.get('wrangler_error', '?')}")
print(f"\n{'Worker rollback, 50 ms a request (command to verified)':<52} {'cfdr':>10}  {'aim / peer (same run)'}")
print(f"{'wall time, with the 2 s settling re-read':<52} {w['cfdr_secs']:>8.2f} s  <= 60 s; {peer}")
print(f"{'wall time, --settle 0s':<52} {w['cfdr_no_settle_secs']:>8.2f} s")
print(f"{'API requests (as the emulator counted them)':<52} {w['emulator_requests']:>10}  <= 8")
print(f"({w['checks']} checks: read back, re-read after the delay, the Worker probed over HTTP)")
PY

python3 "$root/bench/engines.py" "$bin" "$work/engines" --wrangler "$wrangler"

python3 "$root/bench/scale.py" "$bin" "$work/scale"

# The first build a new user waits for (about 5 minutes more; CFDR_BENCH_FIRST_BUILD=0 skips it).
if [ "${CFDR_BENCH_FIRST_BUILD:-1}" != 0 ]; then
  bash "$root/bench/first-build.sh"
fi
