//! The arrows of DESIGN.md, checked on the source: only the entry points reach into the
//! emulator, only `cloudflare/` (and the chat webhook) builds HTTP clients — a repository on
//! S3 goes through its S3 client too — only `seal/` encrypts or derives keys, and the emulator
//! shares no code with the client it stands in for. A file that
//! breaks a rule is named with the line that does it.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every (file, line number, line) under `src/` whose text contains one of `needles`, outside
/// the files `allowed` (path prefixes relative to `src/`).
fn offenders(needles: &[&str], allowed: &[&str]) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut out = Vec::new();
    for f in files {
        let rel = f
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if allowed.iter().any(|a| rel.starts_with(a)) {
            continue;
        }
        for (n, line) in std::fs::read_to_string(&f).unwrap().lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if needles.iter().any(|needle| code.contains(needle)) {
                out.push(format!("src/{rel}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    out
}

#[test]
fn only_the_entry_points_use_the_emulator() {
    let bad = offenders(
        &["emulator::"],
        &["emulator/", "cli/demo.rs", "cli/emulator.rs", "main.rs"],
    );
    assert!(
        bad.is_empty(),
        "the product must talk to the emulator over HTTP only:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_emulator_shares_no_code_with_the_client() {
    // The S3 endpoint checks signatures with code of its own: were it cfdr's signer, a mistake
    // in it would sign and verify alike and no test here would see it.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let everything_else: Vec<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "emulator")
        .collect();
    let allowed: Vec<&str> = everything_else.iter().map(String::as_str).collect();
    let bad = offenders(&["cloudflare::"], &allowed);
    assert!(
        bad.is_empty(),
        "the emulator must not use cfdr's Cloudflare client:\n{}",
        bad.join("\n")
    );
}

#[test]
fn only_cloudflare_builds_http_clients() {
    let bad = offenders(
        &[
            "reqwest::Client",
            "reqwest::get",
            "hyper::client",
            "ClientBuilder",
        ],
        // The emulator's server, the chat webhook, and `cfdr demo` steering its in-process
        // emulator's control routes.
        &["cloudflare/", "emulator/", "ops/notify.rs", "cli/demo.rs"],
    );
    assert!(
        bad.is_empty(),
        "HTTP to Cloudflare goes through cloudflare/:\n{}",
        bad.join("\n")
    );
}

#[test]
fn only_seal_encrypts_and_derives_keys() {
    let bad = offenders(&["aes_gcm", "aead_stream", "hkdf", "Aes256Gcm"], &["seal/"]);
    assert!(bad.is_empty(), "crypto lives in seal/:\n{}", bad.join("\n"));
    // HMAC outside seal/ is SigV4 only: the S3 client signs, the emulator's S3 endpoint checks.
    let bad = offenders(
        &["hmac::"],
        &["seal/", "cloudflare/sigv4.rs", "emulator/r2/s3/auth.rs"],
    );
    assert!(
        bad.is_empty(),
        "HMAC outside seal/ and SigV4:\n{}",
        bad.join("\n")
    );
}

#[test]
fn lower_layers_never_reach_up() {
    // The faces (cli/, tui/) on top, then playbook/ (runbooks), then ops/, then the engines,
    // then cloudflare/, repo/ and seal/ (DESIGN.md).
    let mut bad = offenders(&["crate::cli"], &["cli/"]);
    bad.extend(offenders(&["crate::tui"], &["tui/", "cli/"]));
    bad.extend(offenders(
        &["crate::playbook"],
        &["playbook/", "tui/", "cli/"],
    ));
    bad.extend(offenders(
        &["crate::ops"],
        &["ops/", "playbook/", "tui/", "cli/"],
    ));
    bad.extend(offenders(
        &["crate::engine"],
        &["engine/", "ops/", "playbook/", "tui/", "cli/"],
    ));
    assert!(bad.is_empty(), "an arrow points up:\n{}", bad.join("\n"));
}

#[test]
fn exit_codes_are_chosen_at_the_command_line() {
    let bad = offenders(&["Exit::", "exit::", "ExitCode"], &["cli/", "main.rs"]);
    assert!(
        bad.is_empty(),
        "lower layers return typed errors; cli/exit.rs picks the code:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_checks_see_a_violation() {
    // A rule that can never fail proves nothing: the scanner finds a known use.
    assert!(!offenders(&["aes_gcm"], &[]).is_empty());
    assert!(!offenders(&["reqwest::Client"], &[]).is_empty());
}
