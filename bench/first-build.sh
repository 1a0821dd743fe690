#!/usr/bin/env bash
# The wait a new user has before `cfdr demo`: `cargo build --release` on a fresh clone of HEAD
# with an empty target directory (crates already downloaded: the registry is not timed). Prints
# the wall and CPU time beside the aim, the sum of every unit's time from `--timings` (on two
# cores, half of it is the floor), and the longest units.
#   bash bench/first-build.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/cfdr-first-build-XXXXXX")
trap 'rm -rf "$work"' EXIT
git clone --quiet "$root" "$work/cfdr"
cd "$work/cfdr"
cargo fetch --quiet
/usr/bin/time -f '%e %U %S' -o "$work/time" cargo build --release --timings --quiet 2>/dev/null
python3 - "$work/time" target/cargo-timings/cargo-timing.html "$(nproc)" <<'PY'
import json, re, sys
wall, user, sys_ = map(float, open(sys.argv[1]).read().split()[-3:])
html = open(sys.argv[2]).read()
units = json.loads(re.search(r"const UNIT_DATA = (\[.*?\]);\n", html, re.S).group(1))
total = sum(u["duration"] for u in units)
cores = int(sys.argv[3])
mmss = lambda s: f"{int(s // 60)} min {s % 60:02.0f} s"
print(f"\n{'first build (fresh clone, empty target)':<46} {'cfdr':>16}  aim / reference")
print(f"{'cargo build --release, wall':<46} {mmss(wall):>16}  <= 3 min 30 s")
print(f"{'  CPU (user + system)':<46} {mmss(user + sys_):>16}  {(user + sys_) / wall:.2f} cores busy of {cores}")
print(f"{'  units summed (--timings)':<46} {mmss(total):>16}  floor on {cores} cores: {mmss(total / cores)}")
for u in sorted(units, key=lambda u: -u["duration"])[:6]:
    name = u["name"] + (f" ({u['target'].strip()})" if u.get("target", "").strip() else "")
    print(f"{'  ' + name:<46} {u['duration']:>14.0f} s  starts at {u['start']:.0f} s")
PY
