#!/usr/bin/env python3
"""Conformance of cfdr's emulator against real peers (run by scripts/peers.sh).

1. D1 export: the emulator's export of a database holding every SQLite value type, AUTOINCREMENT,
   indexes, triggers and views is byte-identical to `wrangler d1 export --local` of the same
   content (also with --no-data, --no-schema and --table), and each side imports either's dump
   as the other does (D1's export → import moves some REALs by a bit; both sides alike).
2. R2's S3 endpoint: Debian's AWS CLI and rclone put, list, get and delete objects; a wrong secret
   is refused.
3. The sealed format: scripts/decrypt_sealed.py (Python's `cryptography`, written from the README
   alone) decrypts an artifact of a real backup to the bytes `cfdr backups cat` gives, and sqlite3
   reads the result.
4. `cfdr status --format prometheus` of that repository parses with the Prometheus project's
   Python client (`prometheus_client.parser`), with the backup's figures in it.
5. Adoption: wrangler's own `d1 export` of the fixture goes in through `cfdr import d1-sql`, is
   restored into the emulator, and the emulator's export of the result is byte-identical to
   wrangler's; `systemd-analyze verify` accepts assets/schedules' service and timer.
6. Workers: wrangler 4.86's own `versions list`, `deployments list` and `rollback` against the
   emulator's Workers (the 10220 it gets across a secret change names the secret as wrangler reads
   it; wrangler then forces on its own, where cfdr refuses without --force-secrets), and each
   reads what the other deployed.
7. D1 REALs: cfdr's paged dump of more than 100,000 awkward doubles (random bit patterns,
   subnormals, ±max, ±min normal, values near 1e±300, integral values, -0.0, infinities), replayed
   by wrangler into its local D1 (SQLite 3.47.0), reads back bit for bit from the state file; the
   expression cfdr reads REALs with runs in D1's SQLite as in the emulator's.
Prints one line per check and closes with `N passed, N failed`.
"""
import argparse, datetime, hashlib, json, os, shutil, subprocess, sys, tempfile, urllib.request

FIXTURE = """CREATE TABLE vals(id INTEGER PRIMARY KEY AUTOINCREMENT, i INTEGER, r REAL, t TEXT, b BLOB, n);
INSERT INTO vals(i, r, t, b, n) VALUES (9223372036854775807, 1e300, 'plain', X'00ff10', NULL);
INSERT INTO vals(i, r, t, b, n) VALUES (-9223372036854775808, -0.0, 'it''s "quoted"', X'', NULL);
INSERT INTO vals(i, r, t, b, n) VALUES (9007199254740993, 0.1, 'line1
line2', NULL, 1);
INSERT INTO vals(i, r, t, b, n) VALUES (0, 100.0, 'cr' || char(13) || 'lf' || char(10) || 'end \\n', X'deadbeef', 'x');
INSERT INTO vals(i, r, t, b, n) VALUES (42, 2.5e-8, 'unicode é ☃ 🚀', NULL, 3.5);
INSERT INTO vals(i, r, t, b, n) VALUES (43, 1e-300, 'D1 reads these one bit off', NULL, 2.5e-308);
INSERT INTO vals(i, r, t, b, n) VALUES (44, -1.0e-300, '', NULL, 1.7976931348623157e308);
INSERT INTO vals(i, r, t, b, n) VALUES (7, -1.5, 'gone', NULL, NULL);
DELETE FROM vals WHERE i = 7;
CREATE TABLE "odd name" ("a b" TEXT, "q""uote" INTEGER, [br] TEXT);
INSERT INTO "odd name" VALUES ('x', 1, 'y'), (NULL, NULL, NULL);
CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT UNIQUE);
CREATE TABLE child(id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id), v TEXT);
INSERT INTO parent VALUES (1, 'p1'), (2, 'p2');
INSERT INTO child VALUES (1, 1, 'c1'), (2, 2, 'c2');
CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
INSERT INTO kv VALUES ('a', 1), ('b', X'01');
CREATE INDEX child_parent ON child(parent_id);
CREATE VIEW child_names AS SELECT c.id, p.name FROM child c JOIN parent p ON p.id = c.parent_id;
CREATE TRIGGER vals_touch AFTER UPDATE ON vals BEGIN
  UPDATE vals SET n = 'touched' WHERE id = new.id;
END;
"""

results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f"\n     {detail}" if detail and not ok else ""), flush=True)


class Emulator:
    def __init__(self, cfdr):
        self.proc = subprocess.Popen([cfdr, "emulator", "--listen", "127.0.0.1:0", "--s3-listen", "127.0.0.1:0"],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        fields = dict(w.split("=", 1) for w in line.split()[1:])
        self.api, self.s3, self.account = fields["api"], fields["s3"], fields["account"]
        self.token = "cfdr-emulator-token"

    def call(self, method, path, body=None, raw=None, auth=True, url=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(url or f"{self.api}/accounts/{self.account}{path}", data=data, method=method)
        if auth:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def json(self, method, path, body=None):
        status, _, data = self.call(method, path, body)
        v = json.loads(data)
        if not v.get("success"):
            raise RuntimeError(f"{method} {path}: {status} {v}")
        return v["result"]

    def create(self, name):
        return self.json("POST", "/d1/database", {"name": name})["uuid"]

    def export(self, db, options):
        body = {"output_format": "polling", "dump_options": options}
        while True:
            r = self.json("POST", f"/d1/database/{db}/export", body)
            if r["status"] == "active":
                body["current_bookmark"] = r["at_bookmark"]
                continue
            if r["status"] != "complete":
                raise RuntimeError(f"export failed: {r}")
            status, _, data = self.call("GET", "", url=r["result"]["signed_url"], auth=False)
            assert status == 200, status
            return data

    def import_sql(self, db, sql):
        etag = hashlib.md5(sql).hexdigest()
        init = self.json("POST", f"/d1/database/{db}/import", {"action": "init", "etag": etag})
        status, headers, _ = self.call("PUT", "", raw=sql, url=init["upload_url"], auth=False)
        assert status == 200 and headers["ETag"].strip('"') == etag, (status, headers)
        r = self.json("POST", f"/d1/database/{db}/import", {"action": "ingest", "etag": etag, "filename": init["filename"]})
        while r["status"] == "active":
            r = self.json("POST", f"/d1/database/{db}/import", {"action": "poll", "current_bookmark": r["at_bookmark"]})
        if r["status"] != "complete":
            raise RuntimeError(f"import failed: {r}")
        return r

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class Wrangler:
    def __init__(self, exe, work):
        self.exe, self.work = exe, work
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        with open(os.path.join(work, "wrangler.toml"), "w") as f:
            f.write('name = "conformance"\ncompatibility_date = "2025-01-01"\n')
            for i, name in enumerate(["fixture", "from_emulator", "reals", "reimport"]):
                f.write(f'[[d1_databases]]\nbinding = "DB{i}"\ndatabase_name = "{name}"\ndatabase_id = "00000000-0000-4000-8000-00000000000{i}"\n')

    def run(self, *args):
        r = subprocess.run([self.exe, *args], cwd=self.work, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"wrangler {' '.join(args)}: {r.stdout}\n{r.stderr}")

    def execute_file(self, db, sql):
        path = os.path.join(self.work, f"in-{db}.sql")
        with open(path, "wb") as f:
            f.write(sql)
        self.run("d1", "execute", db, "--local", "--file", path)

    def state(self, table):
        """A copy (SQLite's backup API: the data sits in the -wal file) of the local database
        holding `table`."""
        import sqlite3
        base = os.path.join(self.work, ".wrangler", "state", "v3", "d1", "miniflare-D1DatabaseObject")
        for name in sorted(os.listdir(base)):
            if not name.endswith(".sqlite") or name == "metadata.sqlite":
                continue
            src, copy = sqlite3.connect(os.path.join(base, name)), sqlite3.connect(":memory:")
            src.backup(copy)
            src.close()
            if copy.execute("SELECT count(*) FROM sqlite_schema WHERE name = ?", (table,)).fetchone()[0]:
                return copy
        raise RuntimeError(f"no local D1 database holds `{table}`")

    def query(self, db, sql):
        r = subprocess.run([self.exe, "d1", "execute", db, "--local", "--json", "--command", sql], cwd=self.work,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"wrangler d1 execute --command: {r.stdout}\n{r.stderr}")
        return json.loads(r.stdout)[0]["results"]

    def export(self, db, *flags):
        out = os.path.join(self.work, f"out-{db}.sql")
        self.run("d1", "export", db, "--local", "--output", out, *flags)
        with open(out, "rb") as f:
            return f.read()


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a.splitlines(), b.splitlines())):
        if x != y:
            return f"line {i + 1}: wrangler {x[:160]!r} / emulator {y[:160]!r}"
    return f"lengths differ: {len(a)} vs {len(b)} bytes"


def d1_checks(emu, wr):
    fixture = FIXTURE.encode()
    wr.execute_file("fixture", fixture)
    db = emu.create("fixture")
    emu.import_sql(db, fixture)
    for label, flags, options in [("full", [], {}), ("--no-data", ["--no-data"], {"no_data": True}),
                                  ("--no-schema", ["--no-schema"], {"no_schema": True}),
                                  ("--table child", ["--table", "child"], {"tables": ["child"]})]:
        w, e = wr.export("fixture", *flags), emu.export(db, options)
        check(f"D1 export {label} is byte-identical to wrangler's", w == e, first_difference(w, e))
    w_full, e_full = wr.export("fixture"), emu.export(db, {})
    check("D1 export keeps D1's rounding of integers past 2^53", b"9223372036854776000" in e_full and b"9007199254740992" in e_full)

    # D1's export → import is not a round trip: its SQLite reads back some REALs its export wrote
    # (as JavaScript prints them) as the neighbouring double, 1e-300 among them. Each side is
    # given the same dump and must end up with the same bytes as the other.
    other = emu.create("from-wrangler")
    emu.import_sql(other, w_full)
    again = emu.export(other, {})
    wr.execute_file("reimport", w_full)
    w_again = wr.export("reimport")
    check("the emulator imports wrangler's dump as wrangler does (both export the same bytes after)",
          again == w_again, first_difference(w_again, again))
    check("... and both move 1e-300 by one bit, as D1's SQLite 3.47 reads the export's text",
          b"VALUES(6,43,9.999999999999999e-301," in w_full and b"VALUES(6,43,1e-300," in w_again and again == w_again,
          first_difference(w_full, w_again))
    wr.execute_file("from_emulator", e_full)
    back = wr.export("from_emulator")
    emu_back = emu.create("from-emulator")
    emu.import_sql(emu_back, e_full)
    e_again = emu.export(emu_back, {})
    check("wrangler imports the emulator's dump as the emulator does (both export the same bytes after)",
          back == e_again, first_difference(back, e_again))

    global WRANGLER_DUMP
    WRANGLER_DUMP = w_full

    fts = emu.create("with-fts")
    emu.import_sql(fts, b"CREATE TABLE a(x); CREATE VIRTUAL TABLE f USING fts5(body);")
    try:
        emu.export(fts, {"tables": ["a"]})
        check("an export of a database with a virtual table fails as D1's does", False, "it succeeded")
    except RuntimeError as e:
        check("an export of a database with a virtual table fails as D1's does", "Virtual Tables" in str(e), str(e))


def awkward_reals(n):
    """At least n doubles D1 is likely to get wrong: random bit patterns, subnormals, the extremes,
    values near 1e±300, integral values, zeros."""
    import random, struct
    rnd = random.Random(20261207)
    of = lambda bits: struct.unpack("<d", struct.pack("<Q", bits))[0]
    out = [0.0, -0.0, of(1), -of(1), of((1 << 52) - 1), 2.2250738585072014e-308, -2.2250738585072014e-308,
           1.7976931348623157e308, -1.7976931348623157e308, 1e-300, -1e-300, 2.5e-308, 9.999999999999999e-301]
    out += [of(rnd.getrandbits(52)) * rnd.choice([1, -1]) for _ in range(3000)]                    # subnormals
    out += [float(f"{rnd.uniform(1, 10):.17g}e{e}") for e in (-301, -300, -299, 299, 300, 301) for _ in range(500)]
    out += [float(rnd.randint(-(1 << 53), 1 << 53)) for _ in range(2000)] + [2.0 ** 60, -(2.0 ** 62), 1e22]
    while len(out) < n:
        x = of(rnd.getrandbits(64))
        if x == x and abs(x) != float("inf"):
            out.append(x)
    return out


def reals_checks(cfdr, emu, wr, work):
    """cfdr's paged dump of >= 100,000 awkward REALs, replayed by wrangler 4.86.0 into its local D1
    (SQLite 3.47.0): every value bit for bit, read back from the local state file."""
    import struct
    cols = 50
    values = awkward_reals(105_000)
    rows = [values[i:i + cols] for i in range(0, len(values), cols)]
    rows[-1] += [0.5] * (cols - len(rows[-1]))
    # Even columns REAL (SQLite stores -0.0 there as 0), odd ones untyped (-0.0 kept).
    names = [f"c{j}" + (" REAL" if j % 2 == 0 else "") for j in range(cols)]
    db = emu.create("reals")
    control = emu.api.replace("/client/v4", "") + "/__emulator/faults"
    emu.call("POST", "", body={"rate_limit": {"limit": 1_000_000, "window_secs": 300}}, url=control)
    emu.json("POST", f"/d1/database/{db}/query", {"sql": f"CREATE TABLE reals(id INTEGER PRIMARY KEY, {', '.join(names)})"})
    insert = f"INSERT INTO reals VALUES (?{', ?' * cols})"
    for i, row in enumerate(rows):   # JSON numbers: exact in D1 (JavaScript) and in the emulator
        emu.json("POST", f"/d1/database/{db}/query", {"sql": insert, "params": [i, *row]})
    emu.json("POST", f"/d1/database/{db}/query",
             {"sql": f"INSERT INTO reals(id, c0, c1) VALUES ({len(rows)}, 9e999, -9e999)"})
    want = {i: row for i, row in enumerate(rows)}
    want[len(rows)] = [float("inf"), float("-inf")] + [None] * (cols - 2)

    base = os.path.join(work, "reals")
    shutil.rmtree(base, ignore_errors=True)
    env = dict(os.environ, CFDR_REPO=os.path.join(base, "repo"), CFDR_KEY=os.urandom(32).hex(),
               CFDR_CONFIG="/nonexistent", CLOUDFLARE_API_BASE_URL=emu.api,
               CLOUDFLARE_API_TOKEN=emu.token, CLOUDFLARE_ACCOUNT_ID=emu.account)
    subprocess.run([cfdr, "repo", "init"], env=env, check=True, capture_output=True)
    b = subprocess.run([cfdr, "backup", "d1", "reals", "--method", "paged", "--json"], env=env, capture_output=True, text=True)
    if b.returncode != 0:
        check("cfdr backs up the database of REALs", False, b.stderr[-600:])
        return
    m = json.loads(b.stdout)
    dump = subprocess.run([cfdr, "backups", "cat", m["id"]], env=env, capture_output=True, check=True).stdout
    wr.execute_file("reals", dump)
    local = wr.state("reals")
    bits = lambda x: None if x is None else struct.pack("<d", float(x))
    wrong = []
    for r in local.execute("SELECT * FROM reals ORDER BY id"):
        expect = want.get(r[0], [])
        for j, (got, w) in enumerate(zip(r[1:], expect)):
            if w is not None and j % 2 == 0 and w == 0:
                w = 0.0           # REAL affinity: -0.0 is stored as 0
            if bits(got) != bits(w):
                wrong.append(f"row {r[0]} c{j}: {w!r} came back as {got!r}")
    total = sum(1 for row in want.values() for x in row if x is not None)
    got_rows = local.execute("SELECT count(*) FROM reals").fetchone()[0]
    warned = [w for w in m.get("warnings", []) if "REAL" in w]
    check(f"wrangler 4.86's local D1 replays cfdr's dump of {total:,} REALs bit for bit (the state file read back)",
          got_rows == len(want) and not wrong and not warned, f"{got_rows} rows; {len(wrong)} differ: {wrong[:5]}; warnings: {warned}")
    # The expression cfdr's D1 engine reads a REAL with (engine/d1/query.rs, real_expr) in D1's SQLite.
    expr = ("CASE WHEN typeof({c}) = 'real' THEN CASE WHEN {c} = 0 THEN iif(atan2({c}, -1) < 0, '-0.0', '0.0') "
            "WHEN {c} IN (9e999, -9e999) THEN quote({c}) ELSE {c} END END")
    got = wr.query("reals", f"SELECT {expr.format(c='c0')} AS a, {expr.format(c='c1')} AS b FROM reals WHERE id = {len(rows)}"
                   f" UNION ALL SELECT {expr.format(c='c1')}, {expr.format(c='c3')} FROM reals WHERE id = 0")
    # Row 0 holds 0.0, -0.0, 5e-324, -5e-324 in c0..c3.
    ok = got[0] == {"a": "9.0e+999", "b": "-9.0e+999"} and got[1]["a"] == "-0.0" and got[1]["b"] == want[0][3]
    check("D1's SQLite answers cfdr's REAL expression: infinities, -0.0 (atan2) and numbers as JSON", ok, str(got))


def s3_checks(emu, work):
    body = os.path.join(work, "object.bin")
    with open(body, "wb") as f:
        f.write(os.urandom(300_000))
    digest = hashlib.sha256(open(body, "rb").read()).hexdigest()
    emu.json("POST", "/r2/buckets", {"name": "conformance"})

    aws_env = dict(os.environ, AWS_ACCESS_KEY_ID="cfdr-emulator-access-key", AWS_SECRET_ACCESS_KEY="cfdr-emulator-secret-key",
                   AWS_DEFAULT_REGION="auto", AWS_EC2_METADATA_DISABLED="true")
    aws = ["/usr/bin/aws", "--endpoint-url", emu.s3]

    def run(cmd, env):
        return subprocess.run(cmd, env=env, capture_output=True)

    put = run(aws + ["s3", "cp", body, "s3://conformance/aws/dir/object.bin", "--content-type", "application/x-test"], aws_env)
    check("aws s3 cp (put) through the S3 endpoint", put.returncode == 0, put.stderr.decode())
    ls = run(aws + ["s3", "ls", "s3://conformance/aws/", "--recursive"], aws_env)
    check("aws s3 ls lists the object", ls.returncode == 0 and b"aws/dir/object.bin" in ls.stdout, (ls.stdout + ls.stderr).decode())
    get = run(aws + ["s3", "cp", "s3://conformance/aws/dir/object.bin", "-"], aws_env)
    check("aws s3 cp (get) returns the same bytes", get.returncode == 0 and hashlib.sha256(get.stdout).hexdigest() == digest, get.stderr.decode())
    head = run(aws + ["s3api", "head-object", "--bucket", "conformance", "--key", "aws/dir/object.bin"], aws_env)
    check("aws s3api head-object keeps the content type", head.returncode == 0 and b"application/x-test" in head.stdout, head.stderr.decode())
    rm = run(aws + ["s3", "rm", "s3://conformance/aws/dir/object.bin"], aws_env)
    gone = run(aws + ["s3", "ls", "s3://conformance/aws/", "--recursive"], aws_env)
    check("aws s3 rm deletes it", rm.returncode == 0 and b"aws/dir/object.bin" not in gone.stdout, rm.stderr.decode())
    bad = run(aws + ["s3", "ls", "s3://conformance/"], dict(aws_env, AWS_SECRET_ACCESS_KEY="wrong-secret"))
    check("aws with a wrong secret is refused", bad.returncode != 0 and b"SignatureDoesNotMatch" in bad.stderr, bad.stderr.decode())
    big = os.path.join(work, "big.bin")
    with open(big, "wb") as f:
        f.write(os.urandom(20_000_000))
    big_digest = hashlib.sha256(open(big, "rb").read()).hexdigest()
    put = run(aws + ["s3", "cp", big, "s3://conformance/aws/big.bin"], aws_env)
    get = run(aws + ["s3", "cp", "s3://conformance/aws/big.bin", "-"], aws_env)
    head = run(aws + ["s3api", "head-object", "--bucket", "conformance", "--key", "aws/big.bin"], aws_env)
    check("aws s3 cp of 20 MB goes up as a multipart upload and comes back the same",
          put.returncode == 0 and hashlib.sha256(get.stdout).hexdigest() == big_digest and b'-3\\""' in head.stdout,
          (put.stderr + get.stderr + head.stdout + head.stderr).decode())
    ranged = run(aws + ["s3api", "get-object", "--bucket", "conformance", "--key", "aws/big.bin", "--range", "bytes=100-199",
                        os.path.join(work, "range.bin")], aws_env)
    check("aws s3api get-object --range returns those bytes",
          ranged.returncode == 0 and open(os.path.join(work, "range.bin"), "rb").read() == open(big, "rb").read()[100:200],
          ranged.stderr.decode())
    url = run(aws + ["s3", "presign", "s3://conformance/aws/big.bin", "--expires-in", "60"], aws_env).stdout.decode().strip()
    import urllib.request
    try:
        fetched = urllib.request.urlopen(url).read()
    except Exception as e:  # the check below reports it
        fetched = repr(e).encode()
    check("a URL presigned by the AWS CLI fetches the object without credentials",
          hashlib.sha256(fetched).hexdigest() == big_digest, fetched[:300].decode(errors="replace"))
    run(aws + ["s3", "rm", "s3://conformance/aws/big.bin"], aws_env)

    rc_env = dict(os.environ, RCLONE_CONFIG_S_TYPE="s3", RCLONE_CONFIG_S_PROVIDER="Other", RCLONE_CONFIG_S_ENDPOINT=emu.s3,
                  RCLONE_CONFIG_S_FORCE_PATH_STYLE="true", RCLONE_CONFIG_S_ACCESS_KEY_ID="cfdr-emulator-access-key",
                  RCLONE_CONFIG_S_SECRET_ACCESS_KEY="cfdr-emulator-secret-key", RCLONE_CONFIG_S_REGION="auto")
    rc_env.pop("AWS_CA_BUNDLE", None)
    rclone = ["rclone", "--config", "/dev/null", "--retries", "1", "--low-level-retries", "1"]
    put = run(rclone + ["copyto", body, "S:conformance/rclone-object.bin"], rc_env)
    check("rclone copyto (put) through the S3 endpoint", put.returncode == 0, put.stderr.decode())
    ls = run(rclone + ["lsf", "S:conformance"], rc_env)
    check("rclone lsf lists the object", ls.returncode == 0 and b"rclone-object.bin" in ls.stdout, (ls.stdout + ls.stderr).decode())
    cat = run(rclone + ["cat", "S:conformance/rclone-object.bin"], rc_env)
    check("rclone cat returns the same bytes", cat.returncode == 0 and hashlib.sha256(cat.stdout).hexdigest() == digest, cat.stderr.decode())
    rm = run(rclone + ["deletefile", "S:conformance/rclone-object.bin"], rc_env)
    gone = run(rclone + ["lsf", "S:conformance"], rc_env)
    check("rclone deletefile deletes it", rm.returncode == 0 and b"rclone-object.bin" not in gone.stdout, rm.stderr.decode())
    bad = run(rclone + ["lsf", "S:conformance"], dict(rc_env, RCLONE_CONFIG_S_SECRET_ACCESS_KEY="wrong-secret"))
    check("rclone with a wrong secret is refused", bad.returncode != 0, bad.stderr.decode())

    # Keys are opaque: what the file-system backend mangled or let escape its bucket.
    hostile = ["../victim/owned", "../../../../outside/escaped", "a//b", "a/b", "a/b/", "a/./b",
               "ü ñ/spaces and+plus", "%2F..%2Fenc", "ctl\x01\x7ftab\t", "k" * 1000,
               "d" * 600 + "/" + "e" * 423]
    for b in ["hostile", "victim"]:
        emu.json("POST", "/r2/buckets", {"name": b})
    small = os.path.join(work, "small.bin")
    put_ok = []
    for i, key in enumerate(hostile):
        with open(small, "wb") as f:
            f.write(("body %d" % i).encode())
        r = run(aws + ["s3api", "put-object", "--bucket", "hostile", "--key", key, "--body", small], aws_env)
        put_ok.append(r.returncode == 0 or print(r.stderr.decode()))
    check("aws s3api put-object stores every hostile key", all(put_ok))
    ls = run(aws + ["s3api", "list-objects-v2", "--bucket", "hostile", "--output", "json"], aws_env)
    listed = [o["Key"] for o in json.loads(ls.stdout or b"{}").get("Contents", [])]
    check("aws lists every key back exactly, in byte order",
          listed == sorted(hostile, key=lambda k: k.encode()), "listed %r" % listed)
    got = [run(aws + ["s3api", "get-object", "--bucket", "hostile", "--key", k, os.path.join(work, "got.bin")], aws_env).returncode == 0
           and open(os.path.join(work, "got.bin"), "rb").read() == ("body %d" % i).encode() for i, k in enumerate(hostile)]
    check("aws gets every key's own body back", all(got))
    victim = run(aws + ["s3api", "list-objects-v2", "--bucket", "victim", "--output", "json"], aws_env)
    check("`../victim/owned` stays in its own bucket", victim.returncode == 0 and not json.loads(victim.stdout or b"{}").get("Contents"),
          victim.stdout.decode())
    long = run(aws + ["s3api", "put-object", "--bucket", "hostile", "--key", "x" * 1025, "--body", small], aws_env)
    check("a 1,025-byte key is refused as R2 refuses it", long.returncode != 0 and b"KeyTooLong" in long.stderr, long.stderr.decode())
    tree = ["t/a/1", "t/a/b/2", "t/c/3", "t/4"]
    for k in tree:
        run(aws + ["s3api", "put-object", "--bucket", "hostile", "--key", k, "--body", small], aws_env)
    v1 = run(rclone + ["lsf", "-R", "--files-only", "--s3-list-version", "1", "S:hostile/t"], rc_env)
    check("rclone's recursive ListObjects v1 walk of nested prefixes finishes with every object",
          v1.returncode == 0 and sorted(v1.stdout.decode().split()) == sorted(k[2:] for k in tree), (v1.stdout + v1.stderr).decode())


def repo_checks(cfdr, work):
    repo = os.path.join(work, "repo")
    shutil.rmtree(repo, ignore_errors=True)
    key = os.urandom(32).hex()
    env = dict(os.environ, CFDR_REPO=repo, CFDR_KEY=key, CFDR_CONFIG="/nonexistent")
    db = os.path.join(work, "app.db")
    if os.path.exists(db):
        os.remove(db)
    subprocess.run(["sqlite3", db, "CREATE TABLE t(x, y BLOB); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 40000) "
                    "INSERT INTO t SELECT i, randomblob(30) FROM n;"], check=True)
    subprocess.run([cfdr, "repo", "init"], env=env, check=True, capture_output=True)
    m = json.loads(subprocess.run([cfdr, "backup", "sqlite", db, "--json"], env=env, check=True, capture_output=True).stdout)
    artifact = os.path.join(repo, "snapshots", "sqlite", "app", m["id"], "database.sqlite")
    here = os.path.dirname(os.path.abspath(__file__))
    py = subprocess.run([sys.executable, os.path.join(here, "decrypt_sealed.py"), key, artifact], capture_output=True)
    cat = subprocess.run([cfdr, "backups", "cat", m["id"]], env=env, capture_output=True)
    want = m["artifacts"][0]["plaintext_sha256"]
    check(f"the Python decrypter opens a {m['artifacts'][0]['chunks']}-chunk artifact from the README's spec",
          py.returncode == 0 and hashlib.sha256(py.stdout).hexdigest() == want, py.stderr.decode()[-500:])
    check("its output equals `cfdr backups cat`", py.stdout == cat.stdout and cat.returncode == 0, cat.stderr.decode())
    out = os.path.join(work, "restored.db")
    with open(out, "wb") as f:
        f.write(py.stdout)
    n = subprocess.run(["sqlite3", out, "SELECT count(*) FROM t"], capture_output=True, text=True)
    check("sqlite3 reads the decrypted database", n.stdout.strip() == "40000", n.stdout + n.stderr)
    bad = subprocess.run([sys.executable, os.path.join(here, "decrypt_sealed.py"), os.urandom(32).hex(), artifact], capture_output=True)
    check("the Python decrypter refuses another key", bad.returncode != 0 and b"sealed with key" in bad.stderr, bad.stderr.decode())

    from prometheus_client.parser import text_string_to_metric_families
    st = subprocess.run([cfdr, "status", "--offline", "--format", "prometheus"], env=env, capture_output=True, text=True)
    try:
        families = {f.name: f for f in text_string_to_metric_families(st.stdout)}
        parsed = ""
    except Exception as e:  # the parser refuses what Prometheus would refuse
        families, parsed = {}, repr(e)
    size = [s.value for s in families.get("cfdr_backup_last_size_bytes", type("", (), {"samples": []})).samples
            if s.labels == {"kind": "sqlite", "target": "app"}]
    failures = families.get("cfdr_backup_failures")  # the parser names a counter without `_total`
    check("the Prometheus client parses `cfdr status --format prometheus`, the backup's size in it",
          st.returncode == 0 and not parsed and size == [sum(a["plaintext_size"] for a in m["artifacts"])] and failures is not None and failures.type == "counter",
          parsed or st.stderr + st.stdout[:400])


WRANGLER_DUMP = None


def adoption_checks(cfdr, emu, work):
    if WRANGLER_DUMP is None:
        check("wrangler's dump was there to import", False, "the D1 checks did not get that far")
        return
    base = os.path.join(work, "adoption")
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(os.path.join(base, "dumps", "2026-01-02"))
    with open(os.path.join(base, "dumps", "2026-01-02", "fixture.sql"), "wb") as f:
        f.write(WRANGLER_DUMP)
    env = dict(os.environ, CFDR_REPO=os.path.join(base, "repo"), CFDR_KEY=os.urandom(32).hex(),
               CFDR_CONFIG="/nonexistent", CLOUDFLARE_API_BASE_URL=emu.api,
               CLOUDFLARE_API_TOKEN=emu.token, CLOUDFLARE_ACCOUNT_ID=emu.account)
    subprocess.run([cfdr, "repo", "init"], env=env, check=True, capture_output=True)
    imp = subprocess.run([cfdr, "import", "d1-sql", os.path.join(base, "dumps"), "--json"], env=env, capture_output=True, text=True)
    items = json.loads(imp.stdout)["items"] if imp.returncode == 0 else []
    ok = len(items) == 1 and items[0]["outcome"] == "imported" and items[0]["at"] == "2026-01-02T00:00:00Z"
    check("`cfdr import d1-sql` takes wrangler's own export, dated by its folder", ok, imp.stdout + imp.stderr)
    if ok:
        r = subprocess.run([cfdr, "restore", items[0]["backup"], "--to", "imported-fixture", "--yes"], env=env,
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
        uuid = next((d["uuid"] for d in emu.json("GET", "/d1/database?per_page=100") if d["name"] == "imported-fixture"), None)
        back = emu.export(uuid, {}) if r.returncode == 0 and uuid else b""
        check("restored from the import, the database exports byte-identical to wrangler's dump",
              back == WRANGLER_DUMP, r.stderr[-600:] if r.returncode else first_difference(WRANGLER_DUMP, back))
    units = os.path.join(base, "units")
    os.makedirs(units)
    here = os.path.dirname(os.path.abspath(__file__))
    for name in ["cfdr-backup.service", "cfdr-backup.timer"]:
        with open(os.path.join(here, "..", "assets", "schedules", name)) as f:
            text = f.read().replace("/usr/local/bin/cfdr", os.path.abspath(cfdr))
        with open(os.path.join(units, name), "w") as f:
            f.write(text)
    def verify(paths):
        v = subprocess.run(["systemd-analyze", "verify", "--man=no", *paths], capture_output=True, text=True)
        # Offline, verify still parses and checks the units; what it says about the host (no
        # /etc/cfdr/env here) is not about the files.
        said = [l for l in (v.stdout + v.stderr).splitlines()
                if "cfdr-backup" in l and "/etc/cfdr/env" not in l]
        return v.returncode, said
    code, said = verify([os.path.join(units, n) for n in ["cfdr-backup.service", "cfdr-backup.timer"]])
    check("systemd-analyze verify accepts the schedule's service and timer, saying nothing of them",
          code == 0 and not said, "\n".join(said))
    # The same check sees a mistake: a unit type systemd does not know.
    broken = os.path.join(base, "broken")
    os.makedirs(broken)
    with open(os.path.join(units, "cfdr-backup.service")) as f:
        text = f.read().replace("Type=oneshot", "Type=oneshott")
    with open(os.path.join(broken, "cfdr-backup.service"), "w") as f:
        f.write(text)
    _, said = verify([os.path.join(broken, "cfdr-backup.service")])
    check("systemd-analyze verify names a broken copy of the service", any("oneshott" in l for l in said), "\n".join(said))


def workers_checks(cfdr, emu, wrangler, work):
    base = os.path.join(work, "workers")
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    def upload(body):
        status, _, data = emu.call("POST", "", body=body, url=emu.api.replace("/client/v4", "") + "/__emulator/workers/conf-worker/versions")
        assert status == 200, (status, data)
        return json.loads(data)["result"]["version"]["id"]
    v1 = upload({"message": "one", "secrets": {"K": "a"}})
    v2 = upload({"message": "two", "secrets": {"K": "a"}})
    v3 = upload({"triggered_by": "secret", "secrets": {"K": "b"}})
    env = dict(os.environ, CLOUDFLARE_API_BASE_URL=emu.api, CLOUDFLARE_API_TOKEN=emu.token,
               CLOUDFLARE_ACCOUNT_ID=emu.account, WRANGLER_SEND_METRICS="false", CI="true",
               CFDR_REPO=os.path.join(base, "repo"), CFDR_KEY=os.urandom(32).hex(), CFDR_CONFIG="/nonexistent")
    def wr(*args):
        return subprocess.run([wrangler, *args], cwd=base, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    def cf(*args):
        return subprocess.run([cfdr, *args], cwd=base, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    def live_by_wrangler():
        d = wr("deployments", "list", "--name", "conf-worker", "--json")
        deps = json.loads(d.stdout) if d.returncode == 0 else []
        # By time, not by text: RFC 3339 fractions vary in length ("…51.91Z" is after "…51.91036Z").
        newest = max(deps, key=lambda x: datetime.datetime.fromisoformat(x["created_on"].replace("Z", "+00:00"))) if deps else {}
        return [v["version_id"] for v in newest.get("versions", [])], d
    subprocess.run([cfdr, "repo", "init"], env=env, check=True, capture_output=True)
    v = wr("versions", "list", "--name", "conf-worker", "--json")
    got = [(x["id"], x["number"]) for x in json.loads(v.stdout)] if v.returncode == 0 else []
    check("wrangler versions list reads the emulator's versions, numbered",
          sorted(got, key=lambda x: x[1]) == [(v1, 1), (v2, 2), (v3, 3)], v.stdout[-400:] + v.stderr[-400:])
    live, d = live_by_wrangler()
    check("wrangler deployments list reads the emulator's deployments, the secret change's live", live == [v3], d.stdout[-400:] + d.stderr[-400:])
    posts = lambda: emu.json("GET", "/workers/scripts/conf-worker/deployments")["deployments"]
    before = len(posts())
    r = cf("workers", "rollback", "conf-worker", "--to", v1, "--yes", "--settle", "0s")
    check("cfdr refuses to roll back across the secret change without --force-secrets (10220, K named)",
          r.returncode != 0 and "10220" in r.stdout + r.stderr and "K" in r.stdout and len(posts()) == before, r.stdout[-400:] + r.stderr[-400:])
    r = wr("rollback", v1, "--name", "conf-worker", "--message", "conformance", "-y")
    check("wrangler rollback gets the emulator's 10220 with the secret named, then forces on its own",
          r.returncode == 0 and "* K" in r.stdout and live_by_wrangler()[0] == [v1], r.stdout[-600:] + r.stderr[-400:])
    r = cf("workers", "deployments", "conf-worker", "--json")
    rows = json.loads(r.stdout) if r.returncode == 0 else [{}]
    ok = rows[0].get("live") and rows[0]["versions"][0]["version_id"] == v1 and rows[0].get("message") == "conformance" \
        and rows[0].get("triggered_by") == "deployment"
    check("cfdr reads wrangler's rollback as the live deployment, its message and trigger", bool(ok), r.stdout[-600:] + r.stderr[-400:])
    r = cf("workers", "rollback", "conf-worker", "--to", v2, "--yes", "--settle", "0s")
    check("wrangler reads cfdr's rollback to v2 as what is live", r.returncode == 0 and live_by_wrangler()[0] == [v2],
          r.stdout[-400:] + r.stderr[-400:])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cfdr", required=True)
    p.add_argument("--wrangler", required=True)
    p.add_argument("--work", default=tempfile.mkdtemp(prefix="cfdr-conformance-"))
    a = p.parse_args()
    emu = Emulator(a.cfdr)
    try:
        wr = Wrangler(a.wrangler, os.path.join(a.work, "wrangler"))
        d1_checks(emu, wr)
        reals_checks(a.cfdr, emu, wr, a.work)
        s3_checks(emu, a.work)
        repo_checks(a.cfdr, a.work)
        adoption_checks(a.cfdr, emu, a.work)
        workers_checks(a.cfdr, emu, a.wrangler, a.work)
    except Exception as e:  # a crash is a failure, never a silent pass
        check("conformance run completed", False, repr(e))
    finally:
        emu.stop()
    passed, failed = results.count(True), results.count(False)
    print(f"conformance: {passed} passed, {failed} failed")
    sys.exit(1 if failed or not passed else 0)


if __name__ == "__main__":
    main()
