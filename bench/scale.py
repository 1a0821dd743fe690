#!/usr/bin/env python3
"""cfdr at scale, by simulation against the emulator.

  python3 bench/scale.py BIN_DIR WORK_DIR [--kv-keys N] [--rate-window SECS] [--d1-mib N]
                         [--r2-objects N] [--only kv,d1,r2]

- KV: a backup of N keys (default 1,000,000) against Cloudflare's global limit of 1,200 requests
  a window, the window compressed from 5 minutes to --rate-window seconds (default 3: 100 times
  faster; the emulator's `--rate-window`, cfdr's `CFDR_API_BUDGET=1200/<window>`). The floor is
  what the request count alone allows at that limit: requests / 1,200 windows. The aim: wall time
  at most 1.05 times the floor, and not one 429.
- D1: a paged dump of a database of --d1-mib MiB (default 1,024), written straight into the
  emulator's file, against `sqlite3 .dump` of that file. The aim: at most 2 times sqlite3's time,
  peak memory flat (the same as for a database a hundredth the size).
- R2: a bucket of --r2-objects objects (default 1,000,000), written straight into the emulator's
  database (each of 100 bytes, all pointing at one body file, so seeding takes
  seconds), backed up once, then again unchanged. The aim for the second: no body
  read, the listing streamed, peak memory at most 64 MiB; beside it `rclone size` listing the same
  bucket (a listing and nothing else: the floor for any tool that must see every key).

Wall time and peak memory (ru_maxrss through GNU time) as in bench/engines.py.
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engines import KEY, TOKEN, AK, SK, measure, measure_cpu, process_cpu, rclone_env  # noqa: E402,F401

import json  # noqa: E402
import urllib.request  # noqa: E402


class Emulator:
    def __init__(self, bin_dir, data_dir, limit, window):
        self.proc = subprocess.Popen(
            [f"{bin_dir}/cfdr", "emulator", "--listen", "127.0.0.1:0", "--s3-listen", "127.0.0.1:0",
             "--data-dir", data_dir, "--rate-limit", str(limit), "--rate-window", f"{window}s"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        parts = dict(p.split("=", 1) for p in line.split()[1:])
        self.api, self.s3, self.account = parts["api"], parts["s3"], parts["account"]
        self.origin = self.api.removesuffix("/client/v4")

    def call(self, method, path, body=None, origin=False):
        url = (self.origin if origin else f"{self.api}/accounts/{self.account}") + path
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", f"Bearer {TOKEN}")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read())

    def stats(self):
        return self.call("GET", "/__emulator/stats", origin=True)["result"]

    def env(self, repo, budget):
        e = dict(os.environ)
        e.update(CFDR_REPO=repo, CFDR_KEY=KEY, CFDR_CONFIG="/nonexistent", CLOUDFLARE_API_BASE_URL=self.api,
                 CLOUDFLARE_API_TOKEN=TOKEN, CLOUDFLARE_ACCOUNT_ID=self.account, R2_ENDPOINT=self.s3,
                 R2_ACCESS_KEY_ID=AK, R2_SECRET_ACCESS_KEY=SK, CFDR_API_BUDGET=budget)
        return e

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def kv(a, cfdr, rows):
    window = a.rate_window
    emu = Emulator(a.bin_dir, f"{a.work}/kv-emulator", 1200, window)
    try:
        repo = f"{a.work}/kv-repo"
        env = emu.env(repo, f"1200/{window}s")
        subprocess.run([cfdr, "repo", "init"], env=env, check=True, stdout=subprocess.DEVNULL)
        ns = emu.call("POST", "/storage/kv/namespaces", {"title": "SCALE"})["result"]["id"]
        for i in range(0, a.kv_keys, 10_000):
            items = [{"key": f"user:{j:07}", "value": json.dumps({"id": j, "plan": "pro"})}
                     for j in range(i, min(i + 10_000, a.kv_keys))]
            emu.call("PUT", f"/storage/kv/namespaces/{ns}/bulk", items)
        # The seeding spent this window's requests: start the backup on a fresh one.
        time.sleep(window + 1)
        before = emu.stats()
        secs, rss = measure([cfdr, "backup", "kv", "SCALE", "--concurrency", "8"], env=env)
        after = emu.stats()
        requests = after["total"] - before["total"]
        refused = after["rate_limited"] - before["rate_limited"]
        floor = requests / 1200 * window
        rows.append((f"KV backup, {a.kv_keys:,} keys, 1,200 requests / {window} s window", f"{secs:.1f} s",
                     f"floor {floor:.1f} s ({requests:,} requests)", f"{secs / floor:.3f}x floor"))
        rows.append(("  429s", f"{refused}", "", ""))
        rows.append(("  at Cloudflare's 5-minute window", f"{secs * 300 / window / 60:.0f} min",
                     f"floor {floor * 300 / window / 60:.0f} min", ""))
        rows.append(("  peak memory", f"{rss / 2**20:.0f} MiB", "", ""))
    finally:
        emu.stop()


def d1(a, cfdr, rows):
    emu = Emulator(a.bin_dir, f"{a.work}/d1-emulator", 1_000_000, 300)
    try:
        repo = f"{a.work}/d1-repo"
        env = emu.env(repo, "1200/5m")
        subprocess.run([cfdr, "repo", "init"], env=env, check=True, stdout=subprocess.DEVNULL)
        results = []
        for name, mib in (("small", max(1, a.d1_mib // 100)), ("scale", a.d1_mib)):
            db = emu.call("POST", "/d1/database", {"name": name})["result"]["uuid"]
            emu.call("POST", f"/d1/database/{db}/query", {"sql": "CREATE TABLE events(id INTEGER PRIMARY KEY, kind TEXT, amount REAL, body TEXT, at INTEGER)"})
            path = f"{a.work}/d1-emulator/d1/{db}.sqlite"
            # About 280 bytes a row in the file: rows for the size asked, then the size as it is.
            n = mib * 2**20 // 280
            subprocess.run(["sqlite3", path,
                            f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) "
                            "INSERT INTO events SELECT i, 'kind ' || (i % 97), i * 0.25, hex(randomblob(120)), "
                            "1700000000 + i FROM n;"], check=True)
            size = os.path.getsize(path)
            r0, e0 = emu.stats()["total"], process_cpu(emu.proc.pid)
            secs, rss, cpu = measure_cpu([cfdr, "backup", "d1", name, "--method", "paged"], env=env)
            requests, emu_cpu = emu.stats()["total"] - r0, process_cpu(emu.proc.pid) - e0
            with open(f"{a.work}/dump.sql", "wb") as out:
                sq_secs, sq_rss, sq_cpu = measure_cpu(["sqlite3", path, ".dump"], stdout=out)
            os.remove(f"{a.work}/dump.sql")
            results.append((n, size, secs, rss, requests, sq_secs, sq_rss, cpu, emu_cpu, sq_cpu))
        small_rss = results[0][3]
        (n, size, secs, rss, requests, sq_secs, sq_rss, cpu, emu_cpu, sq_cpu) = results[1]
        rows.append((f"D1 paged dump, {size / 2**30:.2f} GiB ({n:,} rows)", f"{secs:.1f} s",
                     f"sqlite3 .dump {sq_secs:.1f} s", f"{secs / sq_secs:.2f}x its time"))
        # Both ends share this machine's two cores: the emulator does what D1's servers would.
        rows.append(("  CPU: cfdr / the emulator (D1's side)", f"{cpu:.1f} s",
                     f"emulator {emu_cpu:.1f} s; sqlite3 .dump {sq_cpu:.1f} s", f"{cpu / sq_cpu:.2f}x its CPU"))
        rows.append(("  requests (budget: 1,200 / 5 min)", f"{requests:,}", "", ""))
        rows.append(("  peak memory", f"{rss / 2**20:.0f} MiB",
                     f"{small_rss / 2**20:.0f} MiB at a hundredth the size; sqlite3 {sq_rss / 2**20:.0f} MiB", ""))
    finally:
        emu.stop()


def r2(a, cfdr, rows):
    data = f"{a.work}/r2-emulator"
    emu = Emulator(a.bin_dir, data, 1_000_000, 300)
    emu.call("POST", "/r2/buckets", {"name": "scale"})
    emu.stop()
    # Every object shares one body file (nothing in this run deletes one); its ETag is its MD5.
    body = b"x" * 100
    with open(f"{data}/r2/bodies/scale-body", "wb") as f:
        f.write(body)
    etag = hashlib.md5(body).hexdigest()
    subprocess.run(["sqlite3", f"{data}/emulator.sqlite",
                    f"WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {a.r2_objects - 1}) "
                    "INSERT INTO r2_objects(bucket, key, size, etag, modified_ms, body, attrs) "
                    f"SELECT 'scale', printf('photos/%04d/%07d.jpg', i / 1000, i), {len(body)}, '{etag}', "
                    "1765000000000 + i, 'scale-body', '{}' FROM n;"], check=True)
    emu = Emulator(a.bin_dir, data, 1_000_000, 300)
    try:
        repo = f"{a.work}/r2-repo"
        env = emu.env(repo, "1200/5m")
        subprocess.run([cfdr, "repo", "init"], env=env, check=True, stdout=subprocess.DEVNULL)
        first_secs, first_rss = measure([cfdr, "backup", "r2", "scale", "--concurrency", "8"], env=env)
        before = emu.stats()
        secs, rss = measure([cfdr, "backup", "r2", "scale"], env=env)
        after = emu.stats()
        gets = after["routes"].get("GET S3 /{bucket}/{key}", {}).get("requests", 0) - \
            before["routes"].get("GET S3 /{bucket}/{key}", {}).get("requests", 0)
        requests = after["total"] - before["total"]
        rc_secs, rc_rss = measure(["rclone", "--config", "/dev/null", "size", "s:scale"], env=rclone_env(emu.s3))
        rows.append((f"R2 backup, {a.r2_objects:,} objects, unchanged", f"{secs:.1f} s",
                     f"rclone size (listing only) {rc_secs:.1f} s", f"{secs / rc_secs:.2f}x its time"))
        rows.append(("  bodies read / requests", f"{gets} / {requests:,}", "", ""))
        rows.append(("  peak memory", f"{rss / 2**20:.0f} MiB", f"rclone size {rc_rss / 2**20:.0f} MiB", ""))
        rows.append(("  the first backup (every body read)", f"{first_secs:.0f} s",
                     f"{first_rss / 2**20:.0f} MiB peak", ""))
    finally:
        emu.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin_dir")
    ap.add_argument("work")
    ap.add_argument("--kv-keys", type=int, default=1_000_000)
    ap.add_argument("--rate-window", type=int, default=3, help="seconds standing in for 5 minutes")
    ap.add_argument("--d1-mib", type=int, default=1024)
    ap.add_argument("--r2-objects", type=int, default=1_000_000)
    ap.add_argument("--only", default="kv,d1,r2")
    a = ap.parse_args()
    only = set(a.only.split(","))
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    cfdr = f"{a.bin_dir}/cfdr"
    rows = []
    if "kv" in only:
        kv(a, cfdr, rows)
    if "d1" in only:
        d1(a, cfdr, rows)
    if "r2" in only:
        r2(a, cfdr, rows)
    width = max(len(r[0]) for r in rows) + 2
    print(f"\n{'at scale (simulated)':<{width}}{'cfdr':>12}  {'reference (same run)':<48}{'':>16}")
    for r in rows:
        print(f"{r[0]:<{width}}{r[1]:>12}  {r[2]:<48}{r[3]:>16}")
    if "kv" in only:
        print("\nKV: the emulator's rate window compressed (5 min -> --rate-window s), cfdr's budget set to match;"
              " the floor is requests / 1,200 windows.")


if __name__ == "__main__":
    main()
