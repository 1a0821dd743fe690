//! The schedule templates under `assets/schedules/` — a GitHub Actions workflow, a systemd
//! service and timer, a crontab — parse as what they claim to be, and every `cfdr` command in
//! them is one the command line accepts, flags and values included (checked against its own
//! clap definition, so a renamed flag breaks this test, not a team's 2 a.m. backup).

use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

fn asset(name: &str) -> String {
    let p: PathBuf = [env!("CARGO_MANIFEST_DIR"), "assets", "schedules", name]
        .iter()
        .collect();
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `line` split into words as a POSIX shell would (quotes, backslashes; no expansion).
fn words(line: &str) -> Vec<String> {
    let (mut out, mut w, mut quote, mut any) = (Vec::new(), String::new(), None, false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '\'' | '"') => (quote, any) = (Some(c), true),
            (Some(q), c) if c == q => quote = None,
            (None | Some('"'), '\\') => {
                if let Some(n) = chars.next() {
                    w.push(n);
                }
            }
            (None, c) if c.is_whitespace() => {
                if any || !w.is_empty() {
                    out.push(std::mem::take(&mut w));
                }
                any = false;
            }
            (_, c) => w.push(c),
        }
    }
    assert!(quote.is_none(), "an unclosed quote in `{line}`");
    if any || !w.is_empty() {
        out.push(w);
    }
    out
}

/// Every `cfdr …` command in a shell script: its words up to the first operator.
fn cfdr_commands(script: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for line in script.lines() {
        let ws = words(line);
        let mut at = 0;
        while at < ws.len() {
            let cmd: Vec<String> = ws[at..]
                .iter()
                .take_while(|w| {
                    !matches!(w.as_str(), "&&" | "||" | ";" | "|" | ">" | ">>" | "2>&1")
                })
                .cloned()
                .collect();
            at += cmd.len() + 1;
            if let Some(first) = cmd.first()
                && Path::new(first).file_name().is_some_and(|n| n == "cfdr")
            {
                out.push(cmd);
            }
        }
    }
    out
}

/// The command line takes `cmd` as it stands: its subcommand, flags and values.
fn accepted(cmd: &[String], from: &str) {
    let args: Vec<String> = cmd
        .iter()
        .map(|w| {
            // A GitHub expression stands for a value the workflow fills in.
            if w.contains("${{") {
                "https://hooks.example/x".to_string()
            } else {
                w.clone()
            }
        })
        .collect();
    if let Err(e) = cfdr::cli::command("test").try_get_matches_from(&args) {
        panic!("{from}: `{}` is refused: {e}", cmd.join(" "));
    }
}

fn get<'a>(y: &'a Yaml, key: &str) -> &'a Yaml {
    &y[key]
}

#[test]
fn the_github_workflow_backs_up_daily_prunes_weekly_drills_monthly_and_tells_on_failure() {
    let text = asset("github-actions.yml");
    let docs = YamlLoader::load_from_str(&text).expect("the workflow is YAML");
    let w = &docs[0];
    let crons: Vec<&str> = get(get(w, "on"), "schedule")
        .as_vec()
        .expect("on.schedule")
        .iter()
        .map(|s| s["cron"].as_str().unwrap())
        .collect();
    assert_eq!(crons, ["17 2 * * *", "41 3 * * 0", "5 4 1 * *"]);
    for c in &crons {
        assert_eq!(c.split_whitespace().count(), 5, "{c}");
    }
    let jobs = get(w, "jobs").as_hash().expect("jobs");
    let mut seen = Vec::new();
    for (name, job) in jobs {
        let name = name.as_str().unwrap();
        let cond = job["if"].as_str().unwrap_or_default();
        assert!(
            crons.iter().any(|c| cond.contains(c)),
            "job {name} runs on one of the schedules: {cond}"
        );
        let steps = job["steps"].as_vec().expect("steps");
        assert!(
            steps
                .iter()
                .any(|s| s["if"].as_str() == Some("failure()") && s["run"].as_str().is_some()),
            "job {name} tells the team when it fails"
        );
        for step in steps {
            if let Some(run) = step["run"].as_str() {
                for cmd in cfdr_commands(run) {
                    accepted(&cmd, &format!("job {name}"));
                    seen.push(cmd[1..].join(" "));
                }
            }
        }
    }
    for wanted in ["backup --all", "backups prune", "drill ", "status"] {
        assert!(
            seen.iter().any(|s| s.starts_with(wanted)),
            "the workflow runs `cfdr {wanted}`: {seen:?}"
        );
    }
    for secret in ["CLOUDFLARE_API_TOKEN", "CFDR_KEY", "R2_SECRET_ACCESS_KEY"] {
        assert_eq!(
            get(w, "env")[secret].as_str(),
            Some(format!("${{{{ secrets.{secret} }}}}").as_str()),
            "{secret} comes from the repository's secrets, never the file"
        );
    }
}

/// `[Section]` → `Key=Value` lines of a systemd unit.
fn unit(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("`{line}` is not Key=Value"));
        assert!(!section.is_empty(), "`{line}` before any section");
        out.push((section.clone(), k.to_string(), v.to_string()));
    }
    out
}

#[test]
fn the_systemd_pair_runs_the_backup_daily_and_its_commands_parse() {
    let service = unit(&asset("cfdr-backup.service"));
    let timer = unit(&asset("cfdr-backup.timer"));
    let value = |u: &[(String, String, String)], s: &str, k: &str| {
        u.iter()
            .find(|(a, b, _)| a == s && b == k)
            .map(|(_, _, v)| v.clone())
            .unwrap_or_else(|| panic!("[{s}] {k}="))
    };
    assert_eq!(value(&service, "Service", "Type"), "oneshot");
    for (s, k, v) in &service {
        if s == "Service" && k.starts_with("ExecStart") {
            let cmd = words(v);
            assert!(cmd[0].starts_with('/'), "{k} names the binary by its path");
            accepted(&cmd, k);
        }
    }
    assert!(value(&timer, "Timer", "OnCalendar").contains("02:17"));
    assert_eq!(value(&timer, "Timer", "Persistent"), "true");
    assert_eq!(value(&timer, "Install", "WantedBy"), "timers.target");
}

#[test]
fn the_crontab_lines_have_five_fields_and_cfdr_commands_that_parse() {
    let text = asset("crontab");
    let mut n = 0;
    for line in text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let fields: Vec<&str> = line.split_whitespace().collect();
        for f in &fields[..5] {
            assert!(
                f.chars().all(|c| c.is_ascii_digit() || "*/,-".contains(c)),
                "`{f}` in `{line}`"
            );
        }
        let command = fields[5..].join(" ");
        let cmds = cfdr_commands(&command);
        assert!(!cmds.is_empty(), "`{line}` runs cfdr");
        for c in cmds {
            accepted(&c, line);
        }
        n += 1;
    }
    assert_eq!(n, 4, "backup, prune, drill, status");
}

#[test]
fn words_split_as_a_shell_splits_them() {
    assert_eq!(
        words(r#"cfdr drill --notify "${{ x }}" 'a b' c\ d"#),
        ["cfdr", "drill", "--notify", "${{ x }}", "a b", "c d"]
    );
    assert_eq!(
        cfdr_commands(". /etc/cfdr/env && cfdr status >> x 2>&1"),
        [vec!["cfdr".to_string(), "status".to_string()]]
    );
}
