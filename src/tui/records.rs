//! The console's read-only records: the audit trail (newest first, filtered with `/`) and the
//! status (each target against its RPO, its last drill and failure) — the same data as
//! `cfdr audit` and `cfdr status`, read by the same functions.

use crate::ops::status::Status;
use crate::repo::audit::Entry;

#[derive(Debug, Default)]
pub struct Records {
    /// The trail, oldest first; `None` until read.
    pub audit: Option<Vec<Entry>>,
    pub status: Option<Box<Status>>,
    /// The selected row of the filtered trail (0 is the newest).
    pub audit_sel: usize,
    /// Lines of the status scrolled off the top.
    pub scroll: u16,
}

impl Records {
    /// The entries matching every word of `filter` (in action, result, who, target, backup,
    /// run or detail), newest first, as indexes into the trail.
    pub fn audit_rows(&self, filter: &str) -> Vec<usize> {
        let words: Vec<String> = filter.split_whitespace().map(str::to_lowercase).collect();
        let Some(all) = &self.audit else {
            return Vec::new();
        };
        (0..all.len())
            .rev()
            .filter(|i| {
                let e = &all[*i];
                let r = &e.record;
                let fields = [
                    Some(&r.action),
                    Some(&r.result),
                    Some(&e.who),
                    r.target.as_ref(),
                    r.backup.as_ref(),
                    r.run.as_ref(),
                    r.detail.as_ref(),
                ];
                words.iter().all(|w| {
                    fields
                        .iter()
                        .flatten()
                        .any(|f| f.to_lowercase().contains(w))
                })
            })
            .collect()
    }

    pub fn audit_loaded(
        &mut self,
        r: Result<Vec<Entry>, String>,
        message: &mut Option<(bool, String)>,
    ) {
        match r {
            Ok(entries) => self.audit = Some(entries),
            Err(e) => *message = Some((true, format!("cannot read the audit trail: {e}"))),
        }
    }

    pub fn status_loaded(
        &mut self,
        r: Result<Box<Status>, String>,
        message: &mut Option<(bool, String)>,
    ) {
        match r {
            Ok(s) => {
                if !s.past_rpo.is_empty() {
                    *message = Some((
                        true,
                        format!(
                            "{} past their RPO: {}",
                            s.past_rpo.len(),
                            s.past_rpo.join(", ")
                        ),
                    ));
                }
                self.status = Some(s);
            }
            Err(e) => *message = Some((true, format!("cannot compute the status: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::audit::Record;

    fn entry(seq: u64, action: &str, target: &str) -> Entry {
        Entry {
            seq,
            at: format!("2026-12-04T10:00:{seq:02}Z"),
            who: "dana@ops".into(),
            record: Record {
                action: action.into(),
                target: Some(target.into()),
                result: "success".into(),
                ..Default::default()
            },
            prev: String::new(),
            mac: String::new(),
        }
    }

    #[test]
    fn the_trail_is_filtered_by_every_word_newest_first() {
        let r = Records {
            audit: Some(vec![
                entry(1, "backup", "d1 `shop`"),
                entry(2, "restore", "d1 `shop`"),
                entry(3, "backup", "kv `CACHE`"),
            ]),
            ..Default::default()
        };
        assert_eq!(r.audit_rows(""), [2, 1, 0]);
        assert_eq!(r.audit_rows("backup"), [2, 0]);
        assert_eq!(r.audit_rows("backup shop"), [0]);
        assert_eq!(r.audit_rows("SHOP restore"), [1]);
        assert!(Records::default().audit_rows("").is_empty());
    }
}
