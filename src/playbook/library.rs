//! Where playbooks come from: the built-in ones (the top-level `playbooks/` folder, inside the
//! binary) and the operator's own (`*.toml` in the playbooks directory: `CFDR_PLAYBOOKS`, else
//! `playbooks/` beside the config file). An operator's playbook with a built-in's id replaces
//! it, and says so. A broken file is reported with its errors and left out; the rest load.

use std::path::{Path, PathBuf};

use super::model::{self, LoadError, Playbook};

/// The built-in playbooks: (file name, text).
pub const BUILT_IN: [(&str, &str); 9] = [
    (
        "d1-recovery.toml",
        include_str!("../../playbooks/d1-recovery.toml"),
    ),
    (
        "kv-recovery.toml",
        include_str!("../../playbooks/kv-recovery.toml"),
    ),
    (
        "r2-recovery.toml",
        include_str!("../../playbooks/r2-recovery.toml"),
    ),
    (
        "sqlite-recovery.toml",
        include_str!("../../playbooks/sqlite-recovery.toml"),
    ),
    (
        "disaster-recovery.toml",
        include_str!("../../playbooks/disaster-recovery.toml"),
    ),
    (
        "data-corruption.toml",
        include_str!("../../playbooks/data-corruption.toml"),
    ),
    (
        "partial-failure.toml",
        include_str!("../../playbooks/partial-failure.toml"),
    ),
    (
        "quarterly-drill.toml",
        include_str!("../../playbooks/quarterly-drill.toml"),
    ),
    (
        "worker-rollback.toml",
        include_str!("../../playbooks/worker-rollback.toml"),
    ),
];

/// Where a playbook was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    BuiltIn,
    File {
        path: PathBuf,
        /// It has a built-in's id and is used instead of it.
        overrides: bool,
    },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BuiltIn => f.write_str("built in"),
            Self::File {
                path,
                overrides: false,
            } => write!(f, "{}", path.display()),
            Self::File {
                path,
                overrides: true,
            } => write!(f, "{} (overrides the built-in)", path.display()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub playbook: Playbook,
    pub origin: Origin,
}

/// Every playbook that loaded, by id, and the errors of those that did not.
#[derive(Debug, Default)]
pub struct Library {
    pub playbooks: Vec<Entry>,
    pub errors: Vec<LoadError>,
}

impl Library {
    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.playbooks.iter().find(|e| e.playbook.id == id)
    }

    /// The known ids, for an error message.
    pub fn ids(&self) -> String {
        self.playbooks
            .iter()
            .map(|e| e.playbook.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The library in use: the built-ins and the operator's directory (as the configuration in
/// use names it), so an override of a built-in counts everywhere.
pub fn in_use() -> Library {
    let config = crate::config::file_in_use();
    load(user_dir(&crate::config::env_var, config.as_deref()).as_deref())
}

/// The operator's playbooks directory: `CFDR_PLAYBOOKS`, else `playbooks/` beside the config
/// file (`config_file`: the one in use).
pub fn user_dir(
    env: &dyn Fn(&str) -> Option<String>,
    config_file: Option<&Path>,
) -> Option<PathBuf> {
    env("CFDR_PLAYBOOKS").map(PathBuf::from).or_else(|| {
        config_file
            .and_then(Path::parent)
            .map(|d| d.join("playbooks"))
    })
}

/// The built-ins, then the `*.toml` files of `dir` (in name order); a directory that does not
/// exist holds none.
pub fn load(dir: Option<&Path>) -> Library {
    let mut lib = Library::default();
    for (name, text) in BUILT_IN {
        match model::parse(text, &format!("playbooks/{name}")) {
            Ok(p) => lib.playbooks.push(Entry {
                playbook: p,
                origin: Origin::BuiltIn,
            }),
            Err(errors) => lib.errors.extend(errors),
        }
    }
    let Some(dir) = dir else {
        return lib;
    };
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            lib.errors.push(LoadError {
                file: dir.display().to_string(),
                line: 0,
                column: 0,
                message: format!("cannot read the playbooks directory: {e}"),
            });
            Vec::new()
        }
    };
    files.sort();
    let mut own: Vec<String> = Vec::new();
    for path in files {
        let file = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                lib.errors.push(LoadError {
                    file,
                    line: 0,
                    column: 0,
                    message: format!("cannot read it: {e}"),
                });
                continue;
            }
        };
        match model::parse(&text, &file) {
            Ok(p) => {
                if own.contains(&p.id) {
                    lib.errors.push(LoadError {
                        file,
                        line: 1,
                        column: 1,
                        message: format!(
                            "another file in {} already defines playbook `{}`; rename one of their ids",
                            dir.display(),
                            p.id
                        ),
                    });
                    continue;
                }
                own.push(p.id.clone());
                let at = lib.playbooks.iter().position(|e| e.playbook.id == p.id);
                let entry = Entry {
                    origin: Origin::File {
                        path,
                        overrides: at.is_some(),
                    },
                    playbook: p,
                };
                match at {
                    Some(i) => lib.playbooks[i] = entry,
                    None => lib.playbooks.push(entry),
                }
            }
            Err(errors) => lib.errors.extend(errors),
        }
    }
    lib
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_playbook_loads() {
        let lib = load(None);
        assert!(lib.errors.is_empty(), "{:?}", lib.errors);
        let ids: Vec<&str> = lib
            .playbooks
            .iter()
            .map(|e| e.playbook.id.as_str())
            .collect();
        assert_eq!(
            ids,
            [
                "d1-recovery",
                "kv-recovery",
                "r2-recovery",
                "sqlite-recovery",
                "disaster-recovery",
                "data-corruption",
                "partial-failure",
                "quarterly-drill",
                "worker-rollback"
            ]
        );
        for (name, _) in BUILT_IN {
            assert!(
                ids.contains(&name.trim_end_matches(".toml")),
                "{name}: file name = id"
            );
        }
    }

    #[test]
    fn an_operators_playbook_overrides_a_built_in_and_a_broken_one_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let own = BUILT_IN[0].1.replace("rto = \"15m\"", "rto = \"5m\"");
        std::fs::write(dir.path().join("mine.toml"), own).unwrap();
        std::fs::write(dir.path().join("broken.toml"), "id = \"x\"\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a playbook").unwrap();
        let lib = load(Some(dir.path()));
        let d1 = lib.get("d1-recovery").unwrap();
        assert_eq!(d1.playbook.rto, std::time::Duration::from_secs(300));
        assert!(
            d1.origin
                .to_string()
                .ends_with("mine.toml (overrides the built-in)"),
            "{}",
            d1.origin
        );
        assert_eq!(lib.playbooks.len(), BUILT_IN.len());
        assert!(!lib.errors.is_empty());
        assert!(
            lib.errors.iter().all(|e| e.file.ends_with("broken.toml")),
            "{:?}",
            lib.errors
        );
        assert!(
            lib.errors
                .iter()
                .any(|e| e.message.contains("needs `title`")),
            "{:?}",
            lib.errors
        );
    }

    #[test]
    fn the_playbooks_directory_is_named_or_beside_the_config_file() {
        let env = |k: &str| (k == "CFDR_PLAYBOOKS").then(|| "/srv/pb".to_string());
        assert_eq!(user_dir(&env, None), Some(PathBuf::from("/srv/pb")));
        let none = |_: &str| None;
        assert_eq!(
            user_dir(&none, Some(Path::new("/etc/cfdr/config.toml"))),
            Some(PathBuf::from("/etc/cfdr/playbooks"))
        );
    }
}
