//! The work the console starts on the repository — a full verify, a backup now — and the two
//! rules every write follows: one job at a time (the repository has one writer), and none at
//! all in read-only mode, each refusal said on the message line.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::state::{App, Command, Job, Screen};
use crate::ops::backup::What;

impl App {
    pub(super) fn refuse_if_busy(&mut self) -> bool {
        if self.info.read_only {
            self.message = Some((
                true,
                "the console is read-only (--read-only): nothing can be written".into(),
            ));
            return true;
        }
        if let Some(j) = self.running() {
            self.message = Some((
                true,
                format!(
                    "{} is still running; wait for it or cancel it with x",
                    j.title
                ),
            ));
            return true;
        }
        false
    }

    pub(super) fn new_job(&mut self, title: String, backup: Option<String>) -> u64 {
        let id = self.next_job;
        self.next_job += 1;
        self.jobs.push(Job {
            id,
            title,
            last: None,
            outcome: None,
            cancel: Arc::new(AtomicBool::new(false)),
            backup,
        });
        id
    }

    pub(super) fn verify(&mut self) -> Vec<Command> {
        let id = match self.screen() {
            Screen::Detail(id) => Some(id.clone()),
            Screen::Backups(_) => self.selected_entry().map(|e| e.id.clone()),
            _ => None,
        };
        let Some(id) = id else {
            self.message = Some((false, "pick a backup to verify".into()));
            return Vec::new();
        };
        if self.refuse_if_busy() {
            return Vec::new();
        }
        let job = self.new_job(format!("verify {id}"), Some(id.clone()));
        self.message = None;
        vec![Command::Verify { job, id }]
    }

    /// The target under the cursor, as something to back up.
    fn target_here(&self) -> Option<What> {
        let (kind, name, target_id) = match self.screen() {
            Screen::Inventory => {
                let r = self.inventory.get(self.inv_sel)?;
                (r.kind.clone(), r.name.clone(), r.target_id.clone())
            }
            Screen::Backups(_) => {
                let e = self.selected_entry()?;
                (e.kind.clone(), e.target.clone(), e.target_id.clone())
            }
            Screen::Detail(id) => {
                let e = self.entry(id)?;
                (e.kind.clone(), e.target.clone(), e.target_id.clone())
            }
            _ => return None,
        };
        Some(match kind.as_str() {
            "d1" => What::D1 {
                database: name,
                method: None,
            },
            "kv" => What::Kv { namespace: name },
            "r2" => What::R2 { bucket: name },
            _ => What::Sqlite {
                path: target_id.into(),
                name: Some(name),
            },
        })
    }

    pub(super) fn backup_now(&mut self) -> Vec<Command> {
        let Some(what) = self.target_here() else {
            self.message = Some((false, "pick a target to back up".into()));
            return Vec::new();
        };
        if self.refuse_if_busy() {
            return Vec::new();
        }
        let job = self.new_job(format!("backup {}", what.label()), None);
        self.message = None;
        vec![Command::Backup { job, what }]
    }
}
