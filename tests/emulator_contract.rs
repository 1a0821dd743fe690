//! Contract tests: every operation's answer, success and failure, validates against the OpenAPI
//! schemas of the contract (`tests/contract`, copied from `shared/cloudflare-api`).

mod common;

use serde_json::{Value, json};

/// OpenAPI 3.0 writes `nullable: true`; JSON Schema wants `null` among the types.
fn openapi_to_jsonschema(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.get("nullable") == Some(&Value::Bool(true)) {
                if let Some(Value::String(t)) = map.get("type").cloned() {
                    map.insert("type".into(), json!([t, "null"]));
                }
                if let Some(Value::Array(e)) = map.get_mut("enum")
                    && !e.contains(&Value::Null)
                {
                    e.push(Value::Null);
                }
            }
            map.values_mut().for_each(openapi_to_jsonschema);
        }
        Value::Array(a) => a.iter_mut().for_each(openapi_to_jsonschema),
        _ => {}
    }
}

fn spec(product: &str) -> Value {
    let path = format!(
        "{}/tests/contract/{product}.openapi.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("contract file")).expect("json");
    openapi_to_jsonschema(&mut v);
    // The base envelopes type `result` as an object, and list or query responses add an array
    // type for it in an `allOf`: read literally no array could pass both. Cloudflare answers with
    // arrays there, so the base envelope's `result` is left to the operation's own schema.
    if let Some(Value::Object(schemas)) = v.pointer_mut("/components/schemas") {
        for (name, schema) in schemas.iter_mut() {
            if (name.ends_with("api-response-common") || name == "r2_v4_response")
                && let Some(result) = schema.pointer_mut("/properties/result")
            {
                *result = json!({});
            }
        }
    }
    // Some failure responses are written `allOf: [<the success envelope>, <the failure
    // envelope>]` (Workers' versions routes): read literally, nothing passes both (`success` must
    // be true and false). Cloudflare answers such a failure with the failure envelope: that part
    // is what is checked.
    if let Some(Value::Object(paths)) = v.get_mut("paths") {
        for op in paths
            .values_mut()
            .flat_map(|p| p.as_object_mut())
            .flat_map(|p| p.values_mut())
        {
            if let Some(schema) = op.pointer_mut("/responses/4XX/content/application~1json/schema")
                && let Some(failure) = schema["allOf"].as_array().and_then(|parts| {
                    parts
                        .iter()
                        .find(|p| p["$ref"].as_str().is_some_and(|r| r.ends_with("-failure")))
                        .cloned()
                })
            {
                *schema = failure;
            }
        }
    }
    v
}

/// Validates `body` against the response schema of `method path` for `status` (or `4XX`).
fn check(product: &str, path: &str, method: &str, status: u16, body: &Value) {
    let mut root = spec(product);
    let escaped = path.replace('~', "~0").replace('/', "~1");
    let responses = format!("/paths/{escaped}/{method}/responses");
    let key = if root.pointer(&format!("{responses}/{status}")).is_some() {
        status.to_string()
    } else {
        assert!(
            (400..500).contains(&status),
            "{method} {path}: no schema for status {status}: {body}"
        );
        "4XX".to_string()
    };
    let pointer = format!("#{responses}/{key}/content/application~1json/schema");
    assert!(
        root.pointer(&pointer[1..]).is_some(),
        "no schema at {pointer}"
    );
    root["$ref"] = json!(pointer.replace('{', "%7B").replace('}', "%7D"));
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&root)
        .expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status} does not match the contract:\n{}\n{body}",
        errors.join("\n")
    );
}

const D1: &str = "/accounts/{account_id}/d1/database";
const KV: &str = "/accounts/{account_id}/storage/kv/namespaces";
const R2: &str = "/accounts/{account_id}/r2/buckets";

#[tokio::test(flavor = "multi_thread")]
async fn d1_operations_match_the_contract() {
    let api = common::start().await;
    let created = api
        .send(
            "POST",
            "/d1/database",
            Some(json!({ "name": "contract", "primary_location_hint": "weur" })),
        )
        .await;
    check("d1", D1, "post", created.status, &created.json());
    let id = created.result()["uuid"].as_str().unwrap().to_string();

    let list = api.send("GET", "/d1/database?per_page=10", None).await;
    check("d1", D1, "get", list.status, &list.json());
    assert_eq!(list.json()["result_info"]["count"], 1);

    for path in [
        format!("/d1/database/{id}"),
        "/d1/database/contract".to_string(),
    ] {
        let got = api.send("GET", &path, None).await;
        check(
            "d1",
            &format!("{D1}/{{database_id}}"),
            "get",
            got.status,
            &got.json(),
        );
        assert_eq!(got.result()["uuid"], id.as_str());
    }
    for method in ["put", "patch"] {
        let r = api
            .send(
                method,
                &format!("/d1/database/{id}"),
                Some(json!({ "read_replication": { "mode": "auto" } })),
            )
            .await;
        check(
            "d1",
            &format!("{D1}/{{database_id}}"),
            method,
            r.status,
            &r.json(),
        );
    }

    let q = api.d1_sql(&id, "CREATE TABLE t(a INTEGER, b TEXT, c BLOB); INSERT INTO t VALUES (1, 'x', X'00'); SELECT * FROM t").await;
    check(
        "d1",
        &format!("{D1}/{{database_id}}/query"),
        "post",
        q.status,
        &q.json(),
    );
    assert_eq!(
        q.result()[2]["results"][0],
        json!({ "a": 1, "b": "x", "c": [0] })
    );
    let raw = api
        .send(
            "POST",
            &format!("/d1/database/{id}/raw"),
            Some(json!({ "batch": [{ "sql": "SELECT ?1 AS v", "params": ["7"] }] })),
        )
        .await;
    check(
        "d1",
        &format!("{D1}/{{database_id}}/raw"),
        "post",
        raw.status,
        &raw.json(),
    );
    assert_eq!(
        raw.result()[0]["results"],
        json!({ "columns": ["v"], "rows": [["7"]] })
    );

    let first = api
        .send(
            "POST",
            &format!("/d1/database/{id}/export"),
            Some(json!({ "output_format": "polling" })),
        )
        .await;
    assert_eq!(first.status, 202);
    check(
        "d1",
        &format!("{D1}/{{database_id}}/export"),
        "post",
        first.status,
        &first.json(),
    );
    let bookmark = first.result()["at_bookmark"].clone();
    let done = loop {
        let r = api
            .send(
                "POST",
                &format!("/d1/database/{id}/export"),
                Some(json!({ "output_format": "polling", "current_bookmark": bookmark })),
            )
            .await;
        check(
            "d1",
            &format!("{D1}/{{database_id}}/export"),
            "post",
            r.status,
            &r.json(),
        );
        if r.result()["status"] != "active" {
            break r.result();
        }
    };
    assert_eq!(done["status"], "complete");

    let import_path = format!("{D1}/{{database_id}}/import");
    let init = api
        .send(
            "POST",
            &format!("/d1/database/{id}/import"),
            Some(json!({ "action": "init", "etag": "0123456789abcdef0123456789abcdef" })),
        )
        .await;
    check("d1", &import_path, "post", init.status, &init.json());
    let imported = api
        .d1_import(&id, "INSERT INTO t VALUES (2, 'y', NULL);")
        .await;
    assert_eq!(imported["status"], "complete", "{imported}");
    assert_eq!(imported["result"]["num_queries"], 1);
    let poll = api
        .send(
            "POST",
            &format!("/d1/database/{id}/import"),
            Some(json!({ "action": "poll", "current_bookmark": imported["at_bookmark"] })),
        )
        .await;
    check("d1", &import_path, "post", poll.status, &poll.json());

    let bm = api
        .send(
            "GET",
            &format!("/d1/database/{id}/time_travel/bookmark"),
            None,
        )
        .await;
    check(
        "d1",
        &format!("{D1}/{{database_id}}/time_travel/bookmark"),
        "get",
        bm.status,
        &bm.json(),
    );
    let restore = api
        .send(
            "POST",
            &format!(
                "/d1/database/{id}/time_travel/restore?bookmark={}",
                bookmark.as_str().unwrap()
            ),
            None,
        )
        .await;
    check(
        "d1",
        &format!("{D1}/{{database_id}}/time_travel/restore"),
        "post",
        restore.status,
        &restore.json(),
    );
    assert_eq!(
        restore.result()["previous_bookmark"],
        bm.result()["bookmark"]
    );

    // Failures.
    let missing = api
        .send(
            "GET",
            "/d1/database/00000000-0000-4000-8000-000000000000",
            None,
        )
        .await;
    assert_eq!((missing.status, missing.error_code()), (404, 7404));
    check(
        "d1",
        &format!("{D1}/{{database_id}}"),
        "get",
        missing.status,
        &missing.json(),
    );
    let bad_uuid = api.d1_sql("contract", "SELECT 1").await;
    assert_eq!((bad_uuid.status, bad_uuid.error_code()), (400, 7400));
    let sql_error = api.d1_sql(&id, "SELECT * FROM nope").await;
    assert_eq!((sql_error.status, sql_error.error_code()), (400, 7500));
    check(
        "d1",
        &format!("{D1}/{{database_id}}/query"),
        "post",
        sql_error.status,
        &sql_error.json(),
    );
    let dup = api
        .send("POST", "/d1/database", Some(json!({ "name": "contract" })))
        .await;
    check("d1", D1, "post", dup.status, &dup.json());

    let deleted = api
        .send("DELETE", &format!("/d1/database/{id}"), None)
        .await;
    check(
        "d1",
        &format!("{D1}/{{database_id}}"),
        "delete",
        deleted.status,
        &deleted.json(),
    );
    assert_eq!(
        api.send("GET", &format!("/d1/database/{id}"), None)
            .await
            .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kv_operations_match_the_contract() {
    let api = common::start().await;
    let created = api
        .send(
            "POST",
            "/storage/kv/namespaces",
            Some(json!({ "title": "SESSIONS" })),
        )
        .await;
    check("kv", KV, "post", created.status, &created.json());
    let ns = created.result()["id"].as_str().unwrap().to_string();
    let dup = api
        .send(
            "POST",
            "/storage/kv/namespaces",
            Some(json!({ "title": "SESSIONS" })),
        )
        .await;
    assert_eq!((dup.status, dup.error_code()), (400, 10014));
    check("kv", KV, "post", dup.status, &dup.json());

    let list = api
        .send(
            "GET",
            "/storage/kv/namespaces?order=title&direction=desc",
            None,
        )
        .await;
    check("kv", KV, "get", list.status, &list.json());
    let one = api
        .send("GET", &format!("/storage/kv/namespaces/{ns}"), None)
        .await;
    check(
        "kv",
        &format!("{KV}/{{namespace_id}}"),
        "get",
        one.status,
        &one.json(),
    );
    let renamed = api
        .send(
            "PUT",
            &format!("/storage/kv/namespaces/{ns}"),
            Some(json!({ "title": "SESSIONS-2" })),
        )
        .await;
    check(
        "kv",
        &format!("{KV}/{{namespace_id}}"),
        "put",
        renamed.status,
        &renamed.json(),
    );
    assert_eq!(renamed.result()["title"], "SESSIONS-2");

    let values = format!("{KV}/{{namespace_id}}/values/{{key_name}}");
    let put = api
        .send_raw(
            api.http
                .put(format!(
                    "{}/storage/kv/namespaces/{ns}/values/user%3A1?expiration_ttl=120",
                    api.account()
                ))
                .bearer_auth(&api.emu.token)
                .body("{\"id\":1}"),
        )
        .await;
    check("kv", &values, "put", put.status, &put.json());
    let form = b"--B\r\nContent-Disposition: form-data; name=\"value\"\r\n\r\nbinary\xff\r\n--B\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{\"tier\":\"critical\"}\r\n--B--\r\n";
    let multipart = api
        .send_raw(
            api.http
                .put(format!(
                    "{}/storage/kv/namespaces/{ns}/values/blob%2Fone",
                    api.account()
                ))
                .bearer_auth(&api.emu.token)
                .header("content-type", "multipart/form-data; boundary=B")
                .body(form.to_vec()),
        )
        .await;
    check("kv", &values, "put", multipart.status, &multipart.json());

    let raw = api
        .send(
            "GET",
            &format!("/storage/kv/namespaces/{ns}/values/blob%2Fone"),
            None,
        )
        .await;
    assert_eq!(raw.bytes, b"binary\xff");
    let ttl = api
        .send(
            "GET",
            &format!("/storage/kv/namespaces/{ns}/values/user:1"),
            None,
        )
        .await;
    assert!(ttl.headers.contains_key("expiration"));
    let meta = api
        .send(
            "GET",
            &format!("/storage/kv/namespaces/{ns}/metadata/blob%2Fone"),
            None,
        )
        .await;
    check(
        "kv",
        &format!("{KV}/{{namespace_id}}/metadata/{{key_name}}"),
        "get",
        meta.status,
        &meta.json(),
    );
    assert_eq!(meta.result(), json!({ "tier": "critical" }));

    let bulk = api
        .send("PUT", &format!("/storage/kv/namespaces/{ns}/bulk"), Some(json!([{ "key": "a", "value": "1" }, { "key": "b", "value": "AAE=", "base64": true, "metadata": { "m": 1 } }])))
        .await;
    check(
        "kv",
        &format!("{KV}/{{namespace_id}}/bulk"),
        "put",
        bulk.status,
        &bulk.json(),
    );
    let keys = api
        .send(
            "GET",
            &format!("/storage/kv/namespaces/{ns}/keys?limit=10"),
            None,
        )
        .await;
    check(
        "kv",
        &format!("{KV}/{{namespace_id}}/keys"),
        "get",
        keys.status,
        &keys.json(),
    );
    assert_eq!(keys.json()["result_info"]["cursor"], "");
    assert_eq!(keys.result().as_array().unwrap().len(), 4);
    let get = api
        .send(
            "POST",
            &format!("/storage/kv/namespaces/{ns}/bulk/get"),
            Some(json!({ "keys": ["a", "b", "zz"], "withMetadata": true })),
        )
        .await;
    check(
        "kv",
        &format!("{KV}/{{namespace_id}}/bulk/get"),
        "post",
        get.status,
        &get.json(),
    );
    assert_eq!(get.result()["values"]["zz"], Value::Null);
    assert_eq!(get.result()["values"]["b"]["value"], "\u{0}\u{1}");

    let del = api
        .send(
            "POST",
            &format!("/storage/kv/namespaces/{ns}/bulk/delete"),
            Some(json!(["a"])),
        )
        .await;
    check(
        "kv",
        &format!("{KV}/{{namespace_id}}/bulk/delete"),
        "post",
        del.status,
        &del.json(),
    );
    let del_old = api
        .send(
            "DELETE",
            &format!("/storage/kv/namespaces/{ns}/bulk"),
            Some(json!(["b"])),
        )
        .await;
    check(
        "kv",
        &format!("{KV}/{{namespace_id}}/bulk"),
        "delete",
        del_old.status,
        &del_old.json(),
    );
    let del_one = api
        .send(
            "DELETE",
            &format!("/storage/kv/namespaces/{ns}/values/user:1"),
            None,
        )
        .await;
    check("kv", &values, "delete", del_one.status, &del_one.json());

    let missing = api
        .send(
            "GET",
            &format!("/storage/kv/namespaces/{ns}/values/user:1"),
            None,
        )
        .await;
    assert_eq!((missing.status, missing.error_code()), (404, 10009));
    check("kv", &values, "get", missing.status, &missing.json());
    let no_ns = api
        .send(
            "GET",
            "/storage/kv/namespaces/ffffffffffffffffffffffffffffffff/keys",
            None,
        )
        .await;
    assert_eq!(no_ns.error_code(), 10013);
    check(
        "kv",
        &format!("{KV}/{{namespace_id}}/keys"),
        "get",
        no_ns.status,
        &no_ns.json(),
    );

    let gone = api
        .send("DELETE", &format!("/storage/kv/namespaces/{ns}"), None)
        .await;
    check(
        "kv",
        &format!("{KV}/{{namespace_id}}"),
        "delete",
        gone.status,
        &gone.json(),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn r2_bucket_operations_match_the_contract() {
    let api = common::start().await;
    let created = api
        .send(
            "POST",
            "/r2/buckets",
            Some(json!({ "name": "evidence", "locationHint": "weur" })),
        )
        .await;
    check("r2", R2, "post", created.status, &created.json());
    let list = api.send("GET", "/r2/buckets?per_page=1", None).await;
    check("r2", R2, "get", list.status, &list.json());
    let got = api.send("GET", "/r2/buckets/evidence", None).await;
    check(
        "r2",
        &format!("{R2}/{{bucket_name}}"),
        "get",
        got.status,
        &got.json(),
    );
    assert_eq!(got.result()["location"], "weur");
    let missing = api.send("GET", "/r2/buckets/nope-bucket", None).await;
    assert_eq!((missing.status, missing.error_code()), (404, 10006));
    check(
        "r2",
        &format!("{R2}/{{bucket_name}}"),
        "get",
        missing.status,
        &missing.json(),
    );
    let bad = api
        .send("POST", "/r2/buckets", Some(json!({ "name": "Bad_Name" })))
        .await;
    check("r2", R2, "post", bad.status, &bad.json());
    let deleted = api.send("DELETE", "/r2/buckets/evidence", None).await;
    check(
        "r2",
        &format!("{R2}/{{bucket_name}}"),
        "delete",
        deleted.status,
        &deleted.json(),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_failures_use_the_documented_envelope() {
    let api = common::start().await;
    let url = format!("{}/d1/database", api.account());
    let none = api.send_raw(api.http.get(&url)).await;
    assert_eq!((none.status, none.error_code()), (401, 10000));
    check("d1", D1, "get", none.status, &none.json());
    let wrong = api
        .send_raw(api.http.get(&url).bearer_auth("not-the-token"))
        .await;
    assert_eq!((wrong.status, wrong.error_code()), (403, 10000));
    check("d1", D1, "get", wrong.status, &wrong.json());
    let other = format!(
        "{}/accounts/ffffffffffffffffffffffffffffffff/d1/database",
        api.emu.api_url
    );
    let foreign = api
        .send_raw(api.http.get(other).bearer_auth(&api.emu.token))
        .await;
    assert_eq!((foreign.status, foreign.error_code()), (403, 9109));
    let no_route = api.send("GET", "/no/such/route", None).await;
    assert_eq!((no_route.status, no_route.error_code()), (404, 7003));
    assert!(
        !String::from_utf8_lossy(&wrong.bytes).contains("not-the-token"),
        "a token must never be echoed"
    );
}

const WK: &str = "/accounts/{account_id}/workers/scripts";

#[tokio::test(flavor = "multi_thread")]
async fn workers_operations_match_the_contract() {
    let api = common::start().await;
    let upload = |body: Value| api.control("POST", "/__emulator/workers/api/versions", Some(body));
    upload(json!({ "secrets": { "JWT": "one" },
        "bindings": [{ "type": "kv_namespace", "name": "SESSIONS", "namespace_id": "abc" }] }))
    .await;
    let v2 = upload(json!({ "triggered_by": "version_upload", "message": "canary", "secrets": { "JWT": "one" } })).await;
    let v2 = v2["version"]["id"].as_str().unwrap().to_string();

    let list = api.send("GET", "/workers/scripts", None).await;
    check("workers", WK, "get", list.status, &list.json());
    assert_eq!(list.result()[0]["id"], "api");
    for q in ["", "?deployable=true", "?page=2&per_page=1"] {
        let versions = api
            .send("GET", &format!("/workers/scripts/api/versions{q}"), None)
            .await;
        check(
            "workers",
            &format!("{WK}/{{script_name}}/versions"),
            "get",
            versions.status,
            &versions.json(),
        );
    }
    let detail = api
        .send("GET", &format!("/workers/scripts/api/versions/{v2}"), None)
        .await;
    check(
        "workers",
        &format!("{WK}/{{script_name}}/versions/{{version_id}}"),
        "get",
        detail.status,
        &detail.json(),
    );
    let bindings = detail.result()["resources"]["bindings"].to_string();
    assert!(
        bindings.contains("secret_text") && !bindings.contains("one"),
        "a secret's value is never shown: {bindings}"
    );

    let deployments = api
        .send("GET", "/workers/scripts/api/deployments", None)
        .await;
    check(
        "workers",
        &format!("{WK}/{{script_name}}/deployments"),
        "get",
        deployments.status,
        &deployments.json(),
    );
    let first = deployments.result()["deployments"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let created = api
        .send(
            "POST",
            "/workers/scripts/api/deployments",
            Some(json!({ "strategy": "percentage",
                "versions": [{ "version_id": v2, "percentage": 100 }],
                "annotations": { "workers/message": "contract" } })),
        )
        .await;
    check(
        "workers",
        &format!("{WK}/{{script_name}}/deployments"),
        "post",
        created.status,
        &created.json(),
    );
    let id = created.result()["id"].as_str().unwrap().to_string();
    let got = api
        .send(
            "GET",
            &format!("/workers/scripts/api/deployments/{id}"),
            None,
        )
        .await;
    check(
        "workers",
        &format!("{WK}/{{script_name}}/deployments/{{deployment_id}}"),
        "get",
        got.status,
        &got.json(),
    );
    let gone = api
        .send(
            "DELETE",
            &format!("/workers/scripts/api/deployments/{first}"),
            None,
        )
        .await;
    check(
        "workers",
        &format!("{WK}/{{script_name}}/deployments/{{deployment_id}}"),
        "delete",
        gone.status,
        &gone.json(),
    );
    assert_eq!(gone.status, 200);

    // Each failure in the documented envelope.
    for (method, path, body) in [
        ("GET", "/workers/scripts/nope/versions".to_string(), None),
        ("GET", "/workers/scripts/nope/deployments".to_string(), None),
        (
            "GET",
            format!("/workers/scripts/api/versions/{first}"),
            None,
        ),
        (
            "GET",
            format!("/workers/scripts/api/deployments/{first}"),
            None,
        ),
        (
            "DELETE",
            format!("/workers/scripts/api/deployments/{id}"),
            None,
        ),
        (
            "POST",
            "/workers/scripts/api/deployments".to_string(),
            Some(
                json!({ "strategy": "percentage", "versions": [{ "version_id": v2, "percentage": 60 }] }),
            ),
        ),
        (
            "POST",
            "/workers/scripts/nope/deployments".to_string(),
            Some(
                json!({ "strategy": "percentage", "versions": [{ "version_id": v2, "percentage": 100 }] }),
            ),
        ),
    ] {
        let r = api.send(method, &path, body).await;
        assert!(r.status >= 400, "{method} {path}: {}", r.status);
        let template = if path.contains("/versions/") {
            format!("{WK}/{{script_name}}/versions/{{version_id}}")
        } else if path.contains("/versions") {
            format!("{WK}/{{script_name}}/versions")
        } else if path.ends_with("/deployments") {
            format!("{WK}/{{script_name}}/deployments")
        } else {
            format!("{WK}/{{script_name}}/deployments/{{deployment_id}}")
        };
        check(
            "workers",
            &template,
            &method.to_lowercase(),
            r.status,
            &r.json(),
        );
    }
    // A rollback the rules refuse (across a Durable Object migration) in the same envelope.
    let m = upload(json!({ "triggered_by": "version_upload", "migration_tag": "m2" })).await;
    let m = m["version"]["id"].as_str().unwrap();
    let r = api
        .send(
            "POST",
            "/workers/scripts/api/deployments",
            Some(json!({ "strategy": "percentage", "versions": [{ "version_id": m, "percentage": 100 }] })),
        )
        .await;
    assert_eq!((r.status, r.error_code()), (400, 10021));
    check(
        "workers",
        &format!("{WK}/{{script_name}}/deployments"),
        "post",
        r.status,
        &r.json(),
    );
}
