//! D1 REALs bit for bit, through the binary against the emulator (which reads numbers as D1's
//! SQLite 3.47 does): a database of awkward doubles — random bit patterns, subnormals, the
//! extremes, values near 1e±300, -0.0, infinities — backed up, restored into a new database
//! and read back through the query API identical to the bit; one bit of one REAL flipped in the
//! restored database, and `cfdr diff` names the table.

mod common;

use cfdr::sqlnum::literal;
use common::{Api, output, stderr};
use serde_json::Value;

const KEY: &str = "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c";

/// Doubles D1 is likely to get wrong: the awkward ones, then `n` random bit patterns.
fn awkward(n: usize) -> Vec<f64> {
    let mut v = vec![
        f64::MAX,
        -f64::MAX,
        f64::MIN_POSITIVE,
        -f64::MIN_POSITIVE,
        f64::from_bits(1),
        f64::from_bits((1 << 52) - 1),
        1e-300,
        -1e-300,
        9.999999999999999e-301,
        2.5e-308,
        1e300,
        0.1,
        100.0,
        -3.0,
        9007199254740993.0,
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    while v.len() < n {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let x = f64::from_bits(seed);
        if x.is_finite() {
            v.push(x);
        }
    }
    v
}

/// (id, bits of `v`, bits of `u`) of every row of `r`, from JSON numbers (exact: D1 writes them
/// as JavaScript does) and, for zeros and infinities, which JSON cannot tell, from SQL.
async fn read(api: &Api, db: &str) -> Vec<(i64, u64, u64)> {
    let bits = |v: &Value, sign: &Value| -> u64 {
        match (v, sign.as_str()) {
            (_, Some("-0")) => (-0.0f64).to_bits(),
            (_, Some("+inf")) => f64::INFINITY.to_bits(),
            (_, Some("-inf")) => f64::NEG_INFINITY.to_bits(),
            (v, _) => v.as_f64().expect("a number").to_bits(),
        }
    };
    let special = |c: &str| {
        format!(
            "CASE WHEN {c} = 0 AND atan2({c}, -1) < 0 THEN '-0' WHEN {c} = 9e999 THEN '+inf' WHEN {c} = -9e999 THEN '-inf' END"
        )
    };
    // Aliases in the order serde_json's map keeps them (sorted).
    let sql = format!(
        "SELECT id AS a, v AS b, {} AS c, u AS d, {} AS e FROM r ORDER BY id",
        special("v"),
        special("u")
    );
    let reply = api.d1_sql(db, &sql).await.result();
    reply[0]["results"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            let r = r.as_object().unwrap();
            let cols: Vec<&Value> = r.values().collect();
            (
                cols[0].as_i64().unwrap(),
                bits(cols[1], cols[2]),
                bits(cols[3], cols[4]),
            )
        })
        .collect()
}

/// An emulator without a rate limit and a fresh repository (removed with the directory).
async fn start() -> (Api, tempfile::TempDir, String) {
    let api = common::start().await;
    api.unlimited().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo").to_str().unwrap().to_string();
    let init = output(common::restore_cmd(&api, &repo, KEY, &["repo", "init"])).await;
    assert!(init.status.success(), "{}", stderr(&init));
    (api, tmp, repo)
}

/// `CREATE TABLE r(id INTEGER PRIMARY KEY, v <v_type>, u <u_type>)` with row `i` holding
/// `values[i]` and its negation, each written as cfdr writes a REAL.
fn table_of(values: &[f64], v_type: &str, u_type: &str) -> String {
    let mut sql = format!("CREATE TABLE r(id INTEGER PRIMARY KEY, v {v_type}, u {u_type});\n");
    for (i, x) in values.iter().enumerate() {
        sql.push_str(&format!(
            "INSERT INTO r VALUES({i}, {}, {});\n",
            literal(*x),
            literal(-*x)
        ));
    }
    sql
}

#[tokio::test(flavor = "multi_thread")]
async fn reals_come_back_bit_for_bit_and_one_flipped_bit_is_seen() {
    let (api, _tmp, repo) = start().await;
    let cfdr = |args: &[&str]| common::restore_cmd(&api, &repo, KEY, args);

    // `v` has REAL affinity (SQLite keeps -0.0 there as 0), `u` none (it keeps -0.0).
    let values = awkward(3_000);
    let db = api.d1_create("reals").await;
    let mut sql = table_of(&values, "REAL", "");
    sql.push_str(&format!(
        "INSERT INTO r VALUES(-1, {}, {});\nINSERT INTO r VALUES(-2, {}, {});\n",
        literal(f64::INFINITY),
        literal(-0.0),
        literal(f64::NEG_INFINITY),
        literal(0.0)
    ));
    api.d1_import(&db, &sql).await;
    let stored = read(&api, &db).await;
    // What cfdr writes, D1 reads back as exactly the double it came from.
    for (id, v, u) in &stored {
        if *id >= 0 {
            let x = values[*id as usize];
            assert_eq!(*v, x.to_bits(), "row {id}: {x:e}");
            assert_eq!(*u, (-x).to_bits(), "row {id}: {:e}", -x);
        }
    }
    assert!(stored.contains(&(-1, f64::INFINITY.to_bits(), (-0.0f64).to_bits())));

    let backup = output(cfdr(&[
        "backup", "d1", "reals", "--method", "paged", "--json",
    ]))
    .await;
    assert!(backup.status.success(), "{}", stderr(&backup));
    let m: Value = serde_json::from_slice(&backup.stdout).unwrap();
    let b = m["id"].as_str().unwrap().to_string();
    assert_eq!(m["stats"]["row_text"], "exact", "{m}");

    let restored = output(cfdr(&[
        "restore",
        &b,
        "--to",
        "reals-copy",
        "--yes",
        "--json",
    ]))
    .await;
    assert!(restored.status.success(), "{}", stderr(&restored));
    let r: Value = serde_json::from_slice(&restored.stdout).unwrap();
    assert_eq!(r["report"]["outcome"], "success", "{r}");
    let copy = r["report"]["target"]["id"].as_str().unwrap().to_string();
    assert_eq!(read(&api, &copy).await, stored, "every REAL, bit for bit");
    let same = output(cfdr(&["diff", &b, "--to", "reals-copy"])).await;
    assert!(same.status.success(), "{}", stderr(&same));

    // One bit of one REAL (row 9: the double nearest 2.5e-308).
    let (id, v, _) = stored[2 + 9];
    assert_eq!(id, 9);
    let flipped = f64::from_bits(v ^ 1);
    let update = format!("UPDATE r SET v = {} WHERE id = {id}", literal(flipped));
    assert_eq!(api.d1_sql(&copy, &update).await.json()["success"], true);
    let diff = output(cfdr(&["diff", &b, "--to", "reals-copy", "--json"])).await;
    assert_eq!(diff.status.code(), Some(1), "{}", stderr(&diff));
    let d: Value = serde_json::from_slice(&diff.stdout).unwrap();
    assert_eq!(common::diff_keys(&d), ["r"], "{d}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_emulator_reads_and_exports_numbers_as_d1_does() {
    let api = common::start().await;
    let db = api.d1_create("literals").await;
    // wrangler 4.86.0's local D1 (SQLite 3.47.0) answers these, and exports this table, so.
    let reply = api
        .d1_sql(
            &db,
            "SELECT 1e-300 AS a, 2.5e-308 AS b, -1.0e-300 AS c, 0.1 AS d",
        )
        .await
        .result();
    let row = &reply[0]["results"][0];
    assert_eq!(row["a"].as_f64(), Some(9.999999999999999e-301));
    assert_eq!(row["b"].as_f64(), Some(2.5000000000000003e-308));
    assert_eq!(row["c"].as_f64(), Some(-9.999999999999999e-301));
    assert_eq!(row["d"].as_f64(), Some(0.1));
    let sql = "CREATE TABLE t(x REAL); INSERT INTO t VALUES (1e-300), (2.5e-308);";
    assert_eq!(api.d1_sql(&db, sql).await.json()["success"], true);
    let export = api.d1_export(&db, serde_json::json!({})).await.unwrap();
    assert!(
        export.ends_with(
            "INSERT INTO \"t\" VALUES(9.999999999999999e-301);\nINSERT INTO \"t\" VALUES(2.5000000000000003e-308);"
        ),
        "{export}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_backup_keeps_its_reals_exact() {
    let (api, _tmp, repo) = start().await;
    let cfdr = |args: &[&str]| common::restore_cmd(&api, &repo, KEY, args);
    // D1's export writes these as JavaScript does; D1 reads some of that text back one bit off.
    // (REAL columns: in an untyped one the export turns integral REALs into integers.)
    let db = api.d1_create("exported").await;
    api.d1_import(&db, &table_of(&awkward(500), "REAL", "REAL"))
        .await;
    let stored = read(&api, &db).await;

    let backup = output(cfdr(&["backup", "d1", "exported", "--json"])).await;
    assert!(backup.status.success(), "{}", stderr(&backup));
    let m: Value = serde_json::from_slice(&backup.stdout).unwrap();
    assert_eq!(m["method"], "export", "{m}");
    assert_eq!(m["warnings"].as_array().map(Vec::len), Some(0), "{m}");
    let b = m["id"].as_str().unwrap().to_string();
    let restored = output(cfdr(&["restore", &b, "--to", "copy", "--yes", "--json"])).await;
    assert!(restored.status.success(), "{}", stderr(&restored));
    let r: Value = serde_json::from_slice(&restored.stdout).unwrap();
    let copy = r["report"]["target"]["id"].as_str().unwrap().to_string();
    assert_eq!(read(&api, &copy).await, stored, "every REAL, bit for bit");
}
