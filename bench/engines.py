#!/usr/bin/env python3
"""Backup engine benchmarks against the emulator, each beside a real peer from the same run.

  python3 bench/engines.py BIN_DIR WORK_DIR [--kv N] [--r2-small N] [--r2-large N] [--d1-rows N]
                           [--only kv,r2,d1]

- KV: `cfdr backup kv` of N keys with 50 ms latency on every KV request, against a naive loop
  (list keys, then GET each value one by one, as scripts built on `wrangler kv key get` do);
  then `cfdr restore` of that backup into a new namespace (bulk writes, then the verification's
  read-back), against a loop of single PUTs (`wrangler kv key put` one key at a time; timed on
  at most `--naive-puts` keys and scaled).
- R2: `cfdr backup r2` of N small objects and M x 64 MiB, against `rclone copy` from the same
  S3 listener into a local directory; then `cfdr restore` of that backup into a new bucket,
  against `rclone copy` uploading the same files from a local directory into another.
- D1: `cfdr backup d1 --method paged` of a table of N rows, against `sqlite3 .dump` of the
  emulator's file for that same database; then `cfdr restore` of that backup into a new
  database through D1's import, against `sqlite3` replaying the same dump (one transaction) into
  a new file and `wrangler d1 execute --local --file` of it (with `--wrangler PATH`; on at most
  `--wrangler-rows` rows of it, since wrangler's local D1 takes minutes a million rows).

Wall time and peak memory (ru_maxrss of the process, from wait4) for every run; requests as the
emulator counted them. The emulator's rate limit is raised for the run: the naive loop alone
would otherwise spend most of an hour waiting out 429s (which is the point of the request
column: Cloudflare allows 1,200 requests in 5 minutes).
"""

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

TOKEN = "cfdr-emulator-token"
KEY = "2a" * 32
AK, SK = "cfdr-emulator-access-key", "cfdr-emulator-secret-key"


def measure(cmd, env=None, stdout=subprocess.DEVNULL):
    """Runs cmd; returns (seconds, peak RSS bytes)."""
    secs, rss, _ = measure_cpu(cmd, env, stdout)
    return secs, rss


def measure_cpu(cmd, env=None, stdout=subprocess.DEVNULL):
    """Runs cmd; returns (seconds, peak RSS bytes, CPU seconds). The peak comes from GNU time: a
    child forked from this Python process would inherit Python's own high-water mark."""
    with tempfile.NamedTemporaryFile("r") as out:
        t = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "-o", out.name, *cmd], env=env,
                           stdout=stdout, stderr=subprocess.PIPE)
        secs = time.perf_counter() - t
        if p.returncode != 0:
            sys.exit(f"{cmd[0]} failed ({p.returncode}): {p.stderr.decode(errors='replace')[-2000:]}")
        rss, user, system = out.read().split()[-3:]
        return secs, int(rss) * 1024, float(user) + float(system)


def process_cpu(pid):
    """CPU seconds process `pid` has used so far (user + system)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rclone_env(s3):
    """The environment for rclone's remote `s:` on the emulator's S3 listener (no config file)."""
    env = dict(os.environ)
    env.pop("AWS_CA_BUNDLE", None)
    env.update(RCLONE_CONFIG_S_TYPE="s3", RCLONE_CONFIG_S_PROVIDER="Other", RCLONE_CONFIG_S_ENDPOINT=s3,
               RCLONE_CONFIG_S_FORCE_PATH_STYLE="true", RCLONE_CONFIG_S_ACCESS_KEY_ID=AK,
               RCLONE_CONFIG_S_SECRET_ACCESS_KEY=SK, RCLONE_CONFIG_S_REGION="auto")
    return env


class Emulator:
    def __init__(self, bin_dir, data_dir):
        self.proc = subprocess.Popen(
            [f"{bin_dir}/cfdr", "emulator", "--listen", "127.0.0.1:0", "--s3-listen", "127.0.0.1:0",
             "--data-dir", data_dir, "--rate-limit", "1000000"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        parts = dict(p.split("=", 1) for p in line.split()[1:])
        self.api, self.s3, self.account = parts["api"], parts["s3"], parts["account"]
        self.origin = self.api.removesuffix("/client/v4")

    def call(self, method, path, body=None, raw=False, origin=False):
        url = (self.origin if origin else f"{self.api}/accounts/{self.account}") + path
        data = body if raw else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", f"Bearer {TOKEN}")
        req.add_header("Content-Type", "application/octet-stream" if raw else "application/json")
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read())

    def requests(self):
        return self.call("GET", "/__emulator/stats", origin=True)["result"]["total"]

    def faults(self, f):
        self.call("POST", "/__emulator/faults", f, origin=True)

    def env(self, repo):
        e = dict(os.environ)
        e.update(CFDR_REPO=repo, CFDR_KEY=KEY, CFDR_CONFIG="/nonexistent", CLOUDFLARE_API_BASE_URL=self.api,
                 CLOUDFLARE_API_TOKEN=TOKEN, CLOUDFLARE_ACCOUNT_ID=self.account, R2_ENDPOINT=self.s3,
                 R2_ACCESS_KEY_ID=AK, R2_SECRET_ACCESS_KEY=SK)
        return e

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def naive_kv(emu, ns):
    """List every key, then GET each value alone: what a loop over `wrangler kv key get` does."""
    u = urllib.parse.urlparse(emu.api)
    conn = http.client.HTTPConnection(u.hostname, u.port)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    base = f"{u.path}/accounts/{emu.account}/storage/kv/namespaces/{ns}"
    names, cursor = [], ""
    while True:
        conn.request("GET", f"{base}/keys?limit=1000" + (f"&cursor={cursor}" if cursor else ""), headers=headers)
        page = json.loads(conn.getresponse().read())
        names += [k["name"] for k in page["result"]]
        cursor = page["result_info"].get("cursor", "")
        if not cursor:
            break
    total = 0
    for n in names:
        conn.request("GET", f"{base}/values/{urllib.parse.quote(n, safe='')}", headers=headers)
        total += len(conn.getresponse().read())
    return len(names), total


def naive_put(emu, ns, items):
    """PUT each value alone: what a loop over `wrangler kv key put` does."""
    u = urllib.parse.urlparse(emu.api)
    conn = http.client.HTTPConnection(u.hostname, u.port)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/octet-stream"}
    base = f"{u.path}/accounts/{emu.account}/storage/kv/namespaces/{ns}"
    for it in items:
        conn.request("PUT", f"{base}/values/{urllib.parse.quote(it['key'], safe='')}", body=it["value"].encode(),
                     headers=headers)
        r = conn.getresponse()
        r.read()
        assert r.status == 200, r.status


def newest(cfdr, env, kind):
    """The id of the newest backup of a kind."""
    listed = json.loads(subprocess.run([cfdr, "backups", "list", "--kind", kind, "--json"], env=env,
                                       check=True, capture_output=True).stdout)
    entries = listed if isinstance(listed, list) else listed.get("backups", listed.get("entries", []))
    return entries[-1]["id"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin_dir")
    ap.add_argument("work")
    ap.add_argument("--kv", type=int, default=10_000)
    ap.add_argument("--r2-small", type=int, default=2_000)
    ap.add_argument("--r2-large", type=int, default=4)
    ap.add_argument("--d1-rows", type=int, default=1_000_000)
    ap.add_argument("--wrangler", default=None)
    ap.add_argument("--wrangler-rows", type=int, default=100_000)
    ap.add_argument("--naive-puts", type=int, default=1_000)
    ap.add_argument("--only", default="kv,r2,d1", help="engines to run, comma-separated")
    a = ap.parse_args()
    only = set(a.only.split(","))
    cfdr = f"{a.bin_dir}/cfdr"
    # A fresh work directory each run (a repository left by the last one would refuse `repo init`).
    shutil.rmtree(a.work, ignore_errors=True)
    emu = Emulator(a.bin_dir, f"{a.work}/emulator")
    rows = []
    try:
        repo = f"{a.work}/repo"
        subprocess.run([cfdr, "repo", "init"], env=emu.env(repo), check=True, stdout=subprocess.DEVNULL)

        if "kv" in only:
            # KV: N keys, 50 ms on every KV request.
            ns = emu.call("POST", "/storage/kv/namespaces", {"title": "BENCH"})["result"]["id"]
            for i in range(0, a.kv, 10_000):
                items = [{"key": f"user:{j:07}", "value": json.dumps({"id": j, "name": f"user {j}", "plan": "pro"})}
                         for j in range(i, min(i + 10_000, a.kv))]
                emu.call("PUT", f"/storage/kv/namespaces/{ns}/bulk", items)
            emu.faults({"latency_ms": 50, "path_contains": "/storage/kv"})
            r0 = emu.requests()
            kv_secs, kv_rss = measure([cfdr, "backup", "kv", "BENCH", "--concurrency", "8"], env=emu.env(repo))
            r1 = emu.requests()
            t = time.perf_counter()
            n, _ = naive_kv(emu, ns)
            naive_secs = time.perf_counter() - t
            r2 = emu.requests()
            emu.faults({})
            assert n == a.kv, (n, a.kv)
            kv_req, naive_req = r1 - r0, r2 - r1
            rows.append((f"KV backup, {a.kv:,} keys at 50 ms", f"{kv_secs:.1f} s", f"naive loop {naive_secs:.1f} s", f"{naive_secs / kv_secs:.1f}x"))
            rows.append(("  requests", f"{kv_req:,}", f"naive loop {naive_req:,}", f"{naive_req / kv_req:.0f}x fewer"))
            rows.append(("  peak memory", f"{kv_rss / 2**20:.0f} MiB", "", ""))

            # KV restore: that backup into a new namespace, against single PUTs into another.
            kv_backup = newest(cfdr, emu.env(repo), "kv")
            emu.faults({"latency_ms": 50, "path_contains": "/storage/kv"})
            r0 = emu.requests()
            kr_secs, kr_rss = measure([cfdr, "restore", kv_backup, "--to", "BENCH-restored", "--yes"], env=emu.env(repo))
            r1 = emu.requests()
            naive_ns = emu.call("POST", "/storage/kv/namespaces", {"title": "BENCH-naive"})["result"]["id"]
            n = min(a.naive_puts, a.kv)
            t = time.perf_counter()
            naive_put(emu, naive_ns, [{"key": f"user:{j:07}", "value": f"value {j}"} for j in range(n)])
            put_secs = (time.perf_counter() - t) * a.kv / n
            emu.faults({})
            scaled = "" if n == a.kv else f" (on {n:,}, x{a.kv // n})"
            rows.append((f"KV restore, {a.kv:,} keys at 50 ms, verified", f"{kr_secs:.1f} s",
                         f"single PUTs {put_secs:.0f} s{scaled}", f"{put_secs / kr_secs:.0f}x"))
            rows.append(("  requests (writes + read-back)", f"{r1 - r0:,}", f"single PUTs {a.kv:,}", ""))
            rows.append(("  peak memory", f"{kr_rss / 2**20:.0f} MiB", "", ""))

        if "r2" in only:
            # R2: small objects and large ones, uploaded with rclone.
            emu.call("POST", "/r2/buckets", {"name": "bench"})
            src = f"{a.work}/r2-src"
            os.makedirs(src)
            for i in range(a.r2_small):
                with open(f"{src}/obj-{i:05}.json", "w") as f:
                    f.write(json.dumps({"i": i, "pad": "x" * (200 + i % 3000)}))
            for i in range(a.r2_large):
                with open(f"{src}/large-{i}.bin", "wb") as f:
                    f.write(os.urandom(64 << 20))
            renv = rclone_env(emu.s3)
            subprocess.run(["rclone", "--config", "/dev/null", "copy", src, "s:bench"], env=renv, check=True)
            total = sum(os.path.getsize(f"{src}/{f}") for f in os.listdir(src))
            r2_secs, r2_rss = measure([cfdr, "backup", "r2", "bench"], env=emu.env(repo))
            again_secs, _ = measure([cfdr, "backup", "r2", "bench"], env=emu.env(repo))
            rc_secs, rc_rss = measure(["rclone", "--config", "/dev/null", "copy", "s:bench", f"{a.work}/r2-rclone"], env=renv)
            label = f"R2 backup, {a.r2_small:,} small + {a.r2_large} x 64 MiB ({total / 2**20:.0f} MiB)"
            rows.append((label, f"{r2_secs:.1f} s", f"rclone copy {rc_secs:.1f} s", f"{rc_secs / r2_secs:.2f}x"))
            rows.append(("  again, unchanged (by ETag)", f"{again_secs:.2f} s", f"rclone copy {rc_secs:.1f} s", f"{rc_secs / again_secs:.1f}x"))
            rows.append(("  peak memory", f"{r2_rss / 2**20:.0f} MiB", f"rclone {rc_rss / 2**20:.0f} MiB", ""))

            # R2 restore: the same objects from the repository into a new bucket, against rclone
            # uploading them from a local directory into another.
            backup_id = newest(cfdr, emu.env(repo), "r2")
            up_secs, up_rss = measure([cfdr, "restore", backup_id, "--to", "bench-restored", "--yes"], env=emu.env(repo))
            rc_up_secs, rc_up_rss = measure(["rclone", "--config", "/dev/null", "copy", src, "s:bench-rclone-up"], env=renv)
            rows.append((f"R2 restore, the same objects into a new bucket", f"{up_secs:.1f} s", f"rclone copy up {rc_up_secs:.1f} s", f"{rc_up_secs / up_secs:.2f}x"))
            rows.append(("  peak memory", f"{up_rss / 2**20:.0f} MiB", f"rclone {rc_up_rss / 2**20:.0f} MiB", ""))

        if "d1" in only:
            # D1: one table of N rows, written straight into the emulator's file for that database.
            db = emu.call("POST", "/d1/database", {"name": "bench"})["result"]["uuid"]
            emu.call("POST", f"/d1/database/{db}/query", {"sql": "CREATE TABLE orders(id INTEGER PRIMARY KEY, customer TEXT, total REAL, note TEXT, at INTEGER)"})
            path = f"{a.work}/emulator/d1/{db}.sqlite"
            subprocess.run(["sqlite3", path,
                            f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {a.d1_rows}) "
                            "INSERT INTO orders SELECT i, 'customer ' || (i % 9973), i * 1.25, "
                            "'note ' || hex(randomblob(8)), 1700000000 + i FROM n;"], check=True)
            r0 = emu.requests()
            d1_secs, d1_rss = measure([cfdr, "backup", "d1", "bench", "--method", "paged"], env=emu.env(repo))
            d1_req = emu.requests() - r0
            with open(f"{a.work}/dump.sql", "wb") as out:
                sq_secs, sq_rss = measure(["sqlite3", path, ".dump"], stdout=out)
            rows.append((f"D1 paged dump, {a.d1_rows:,} rows", f"{d1_secs:.1f} s", f"sqlite3 .dump {sq_secs:.1f} s", f"{sq_secs / d1_secs:.2f}x"))
            rows.append(("  requests (budget: 1,200 / 5 min)", f"{d1_req:,}", "", ""))
            rows.append(("  peak memory", f"{d1_rss / 2**20:.0f} MiB", f"sqlite3 {sq_rss / 2**20:.0f} MiB", ""))

            # D1 restore: that backup into a new database through the import API, against sqlite3
            # replaying the same dump into a new file, and wrangler's local D1 executing it.
            d1_backup = newest(cfdr, emu.env(repo), "d1")
            r0 = emu.requests()
            rs_secs, rs_rss = measure([cfdr, "restore", d1_backup, "--to", "bench-restored", "--yes"], env=emu.env(repo))
            rs_req = emu.requests() - r0
            sq_rs_secs, sq_rs_rss = measure(["sqlite3", f"{a.work}/replayed.db", f".read {a.work}/dump.sql"])
            rows.append((f"D1 restore, {a.d1_rows:,} rows, into a new database", f"{rs_secs:.1f} s",
                         f"sqlite3 .read {sq_rs_secs:.1f} s", f"{sq_rs_secs / rs_secs:.2f}x"))
            if a.wrangler:
                n = min(a.wrangler_rows, a.d1_rows)
                wdir = f"{a.work}/wrangler"
                os.makedirs(wdir)
                with open(f"{wdir}/wrangler.toml", "w") as f:
                    f.write('name = "bench"\ncompatibility_date = "2025-01-01"\n[[d1_databases]]\nbinding = "DB"\n'
                            'database_name = "bench"\ndatabase_id = "00000000-0000-4000-8000-000000000000"\n')
                with open(f"{a.work}/dump.sql") as src, open(f"{wdir}/in.sql", "w") as out:
                    inserts = 0
                    for line in src:
                        if line.startswith(("BEGIN TRANSACTION", "COMMIT", "PRAGMA foreign_keys")):
                            continue
                        if line.startswith("INSERT"):
                            inserts += 1
                            if inserts > n:
                                continue
                        out.write(line)
                wenv = dict(os.environ, WRANGLER_SEND_METRICS="false")
                t = time.perf_counter()
                subprocess.run([a.wrangler, "d1", "execute", "bench", "--local", "--file", "in.sql", "--yes"], cwd=wdir,
                               env=wenv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                w_secs = (time.perf_counter() - t) * a.d1_rows / n
                scaled = "" if n == a.d1_rows else f" (on {n:,}, x{a.d1_rows // n})"
                rows.append(("", "", f"wrangler --local {w_secs:.0f} s{scaled}", f"{w_secs / rs_secs:.0f}x"))
            else:
                rows.append(("", "", "wrangler: give --wrangler PATH", ""))
            rows.append(("  requests", f"{rs_req:,}", "", ""))
            rows.append(("  peak memory", f"{rs_rss / 2**20:.0f} MiB", f"sqlite3 {sq_rs_rss / 2**20:.0f} MiB", ""))
    finally:
        emu.stop()

    print(f"\n{'engine measure':<52} {'cfdr':>10}  {'peer (same run)':<26} {'cfdr advantage':>14}")
    for r in rows:
        print(f"{r[0]:<52} {r[1]:>10}  {r[2]:<26} {r[3]:>14}")
    print("\nratios above 1 mean cfdr was faster; the D1 peer reads a local file, cfdr goes through the HTTP API.")


if __name__ == "__main__":
    main()
