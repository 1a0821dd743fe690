//! Retention as restic's `forget` reads it: keep-last N, keep-hourly/daily/weekly/monthly/yearly
//! N (the newest backup of each of the last N periods that have one), keep-within DURATION (of
//! the newest backup). Pure: which backup each rule keeps, and why the rest go.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use time::OffsetDateTime;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub last: usize,
    pub hourly: usize,
    pub daily: usize,
    pub weekly: usize,
    pub monthly: usize,
    pub yearly: usize,
    pub within: Option<Duration>,
}

impl Policy {
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }
}

#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: String,
    pub time: OffsetDateTime,
    /// Complete and not known to be damaged.
    pub good: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub id: String,
    /// Why it stays (`last`, `daily 2026-11-23`, `within 7d`, `newest good`); empty: it goes.
    pub reasons: Vec<String>,
}

impl Decision {
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// Names the period a backup falls in (`2026-11-23`, `2026-W47`, …).
type Bucket = fn(OffsetDateTime) -> String;

/// Decides for one group (a target's backups). The newest good backup always stays.
pub fn decide(candidates: &[Candidate], policy: &Policy) -> Vec<Decision> {
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    sorted.sort_by(|a, b| b.time.cmp(&a.time).then(b.id.cmp(&a.id)));
    let mut reasons: BTreeMap<&str, Vec<String>> =
        sorted.iter().map(|c| (c.id.as_str(), Vec::new())).collect();

    for c in sorted.iter().take(policy.last) {
        reasons.entry(&c.id).or_default().push("last".into());
    }
    let buckets: [(&str, usize, Bucket); 5] = [
        ("hourly", policy.hourly, |t| {
            format!(
                "{}-{:02}-{:02} {:02}h",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour()
            )
        }),
        ("daily", policy.daily, |t| {
            format!("{}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
        }),
        ("weekly", policy.weekly, |t| {
            let (y, w, _) = t.to_iso_week_date();
            format!("{y}-W{w:02}")
        }),
        ("monthly", policy.monthly, |t| {
            format!("{}-{:02}", t.year(), u8::from(t.month()))
        }),
        ("yearly", policy.yearly, |t| t.year().to_string()),
    ];
    for (name, n, bucket) in buckets {
        let mut seen = BTreeSet::new();
        for c in &sorted {
            if seen.len() >= n {
                break;
            }
            let b = bucket(c.time);
            if seen.insert(b.clone()) {
                reasons
                    .entry(&c.id)
                    .or_default()
                    .push(format!("{name} {b}"));
            }
        }
    }
    if let (Some(within), Some(newest)) = (policy.within, sorted.first()) {
        let cutoff = newest.time - within;
        for c in sorted.iter().filter(|c| c.time >= cutoff) {
            reasons
                .entry(&c.id)
                .or_default()
                .push(format!("within {}", humantime::format_duration(within)));
        }
    }
    if let Some(newest_good) = sorted.iter().find(|c| c.good) {
        let r = reasons.entry(&newest_good.id).or_default();
        if r.is_empty() {
            r.push("newest good".into());
        }
    }
    sorted
        .iter()
        .map(|c| Decision {
            id: c.id.clone(),
            reasons: reasons.remove(c.id.as_str()).unwrap_or_default(),
        })
        .collect()
}

/// Keeps the parents of every kept incremental backup (and theirs, up the chain): an
/// incremental backup is only whole with its parents. `parents` maps a backup to its parent.
pub fn keep_parents(decisions: &mut [Decision], parents: &BTreeMap<String, String>) {
    let index: BTreeMap<String, usize> = decisions
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id.clone(), i))
        .collect();
    let kept: Vec<String> = decisions
        .iter()
        .filter(|d| d.keep())
        .map(|d| d.id.clone())
        .collect();
    for child in kept {
        let mut at = child.clone();
        let mut seen = BTreeSet::new();
        while let Some(parent) = parents.get(&at) {
            if !seen.insert(parent.clone()) {
                break;
            }
            if let Some(&i) = index.get(parent) {
                let reason = format!("parent of {child}");
                if !decisions[i].reasons.contains(&reason) {
                    decisions[i].reasons.push(reason);
                }
            }
            at = parent.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn c(id: &str, t: OffsetDateTime) -> Candidate {
        Candidate {
            id: id.into(),
            time: t,
            good: true,
        }
    }

    fn kept(cands: &[Candidate], p: &Policy) -> Vec<String> {
        decide(cands, p)
            .into_iter()
            .filter(Decision::keep)
            .map(|d| d.id)
            .collect()
    }

    fn history() -> Vec<Candidate> {
        vec![
            c("a", datetime!(2026-01-01 10:00 UTC)),
            c("b", datetime!(2026-01-01 22:00 UTC)),
            c("c", datetime!(2026-01-02 09:00 UTC)),
            c("d", datetime!(2026-01-09 09:00 UTC)),
            c("e", datetime!(2026-02-01 09:00 UTC)),
            c("f", datetime!(2026-02-01 09:30 UTC)),
            c("g", datetime!(2027-03-01 00:00 UTC)),
        ]
    }

    #[test]
    fn each_rule_keeps_what_restic_keeps() {
        let table: [(Policy, &[&str]); 8] = [
            (
                Policy {
                    last: 2,
                    ..Policy::default()
                },
                &["g", "f"],
            ),
            (
                Policy {
                    hourly: 2,
                    ..Policy::default()
                },
                &["g", "f"],
            ),
            (
                Policy {
                    daily: 3,
                    ..Policy::default()
                },
                &["g", "f", "d"],
            ),
            (
                Policy {
                    weekly: 3,
                    ..Policy::default()
                },
                &["g", "f", "d"],
            ),
            (
                Policy {
                    monthly: 3,
                    ..Policy::default()
                },
                &["g", "f", "d"],
            ),
            (
                Policy {
                    yearly: 5,
                    ..Policy::default()
                },
                &["g", "f"],
            ),
            (
                Policy {
                    daily: 10,
                    ..Policy::default()
                },
                &["g", "f", "d", "c", "b"],
            ),
            (
                Policy {
                    within: Some(Duration::from_secs(400 * 86_400)),
                    ..Policy::default()
                },
                &["g", "f", "e"],
            ),
        ];
        for (policy, want) in table {
            assert_eq!(kept(&history(), &policy), want, "{policy:?}");
        }
    }

    #[test]
    fn rules_combine_and_say_why() {
        let p = Policy {
            last: 1,
            monthly: 2,
            ..Policy::default()
        };
        let d = decide(&history(), &p);
        assert_eq!(d[0].reasons, vec!["last", "monthly 2027-03"]);
        assert_eq!(d[1].reasons, vec!["monthly 2026-02"]);
        assert!(d[2..].iter().all(|x| !x.keep()));
    }

    #[test]
    fn the_newest_good_backup_is_never_dropped() {
        let mut h = history();
        h[6].good = false; // the newest is damaged
        let p = Policy {
            last: 1,
            ..Policy::default()
        };
        let d = decide(&h, &p);
        assert_eq!(d[0].reasons, vec!["last"]);
        assert_eq!(
            d[1].reasons,
            vec!["newest good"],
            "f is the newest good one"
        );
        let none = decide(&h, &Policy::default());
        assert_eq!(kept(&h, &Policy::default()), vec!["f"]);
        assert_eq!(none.len(), 7);
    }

    #[test]
    fn parents_of_kept_incrementals_stay_up_the_chain() {
        let d = |id: &str, keep: bool| Decision {
            id: id.into(),
            reasons: if keep { vec!["last".into()] } else { vec![] },
        };
        let mut ds = vec![
            d("full", false),
            d("inc1", false),
            d("inc2", true),
            d("other", false),
        ];
        let parents: BTreeMap<String, String> = [("inc2", "inc1"), ("inc1", "full")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        keep_parents(&mut ds, &parents);
        assert_eq!(ds[0].reasons, vec!["parent of inc2".to_string()]);
        assert_eq!(ds[1].reasons, vec!["parent of inc2".to_string()]);
        assert!(!ds[3].keep());
    }
}
