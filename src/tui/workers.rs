//! The Workers screen: each Worker with what is live (its split during a gradual rollout), and
//! for the one under the cursor its recent deployments and the rollback cfdr would make — the
//! automatic target, why, and the preflight's warnings or refusal — read with a dry plan
//! (reads only). `R` runs the `worker-rollback` playbook on that very target: the run screen
//! asks for the Worker's name typed, then deploys and verifies.

use std::collections::BTreeMap;

use super::state::{App, Command, Screen};
use crate::ops::workers::rollback::{Pick, WorkerPlan};
use crate::ops::workers::{DeploymentRow, WorkerRow};

/// One Worker's history and its rollback plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Detail {
    pub deployments: Vec<DeploymentRow>,
    /// The automatic rollback, or why there is none.
    pub plan: Result<WorkerPlan, String>,
}

#[derive(Debug, Default)]
pub struct Workers {
    /// As last read; `None` while reading.
    pub list: Option<Result<Vec<WorkerRow>, String>>,
    pub sel: usize,
    /// By Worker name; absent while reading.
    pub detail: BTreeMap<String, Result<Detail, String>>,
}

impl Workers {
    pub fn rows(&self) -> &[WorkerRow] {
        match &self.list {
            Some(Ok(rows)) => rows,
            _ => &[],
        }
    }

    pub fn selected(&self) -> Option<&WorkerRow> {
        self.rows().get(self.sel)
    }
}

/// What the console reads for one Worker: its deployments and the automatic rollback's plan.
pub async fn detail(
    env: &crate::ops::backup::Env<'_>,
    name: &str,
) -> Result<Detail, crate::ops::Error> {
    let deployments = crate::ops::workers::deployments(env.client, name).await?;
    let req = crate::ops::workers::deploy::Request {
        workers: vec![(name.to_string(), Pick::Auto)],
        steps: Vec::new(),
        undo_of: None,
    };
    let plan = crate::ops::workers::deploy::plan(env, &req)
        .await
        .map(|mut p| p.workers.remove(0))
        .map_err(|e| e.to_string());
    Ok(Detail { deployments, plan })
}

impl App {
    /// `w`: the Workers, read afresh.
    pub(super) fn workers_open(&mut self) -> Vec<Command> {
        if !self.go_to(Screen::Workers) {
            return Vec::new();
        }
        self.workers.list = None;
        self.workers.detail.clear();
        vec![Command::LoadWorkers]
    }

    pub(super) fn workers_loaded(&mut self, r: Result<Vec<WorkerRow>, String>) -> Vec<Command> {
        self.workers.list = Some(r);
        self.workers.sel = self
            .workers
            .sel
            .min(self.workers.rows().len().saturating_sub(1));
        self.workers_selected()
    }

    /// The detail of the Worker under the cursor, read when it is not yet.
    pub(super) fn workers_selected(&mut self) -> Vec<Command> {
        match self.workers.selected() {
            Some(w) if !self.workers.detail.contains_key(&w.name) => {
                vec![Command::LoadWorker(w.name.clone())]
            }
            _ => Vec::new(),
        }
    }

    /// `R` on a Worker: the `worker-rollback` playbook on the planned target, on the run
    /// screen (it asks for the name typed before deploying).
    pub(super) fn workers_rollback(&mut self) -> Vec<Command> {
        let Some(name) = self.workers.selected().map(|w| w.name.clone()) else {
            self.message = Some((false, "pick a Worker to roll back".into()));
            return Vec::new();
        };
        let plan = match self.workers.detail.get(&name) {
            None => {
                self.message = Some((false, format!("reading {name}'s plan…")));
                return Vec::new();
            }
            Some(Err(e)) => {
                self.message = Some((true, e.clone()));
                return Vec::new();
            }
            Some(Ok(d)) => d.plan.clone(),
        };
        let plan = match plan {
            Err(e) => {
                self.message = Some((true, e));
                return Vec::new();
            }
            Ok(p) => p,
        };
        if let Some(f) = plan.refusal() {
            self.message = Some((true, format!("{name} cannot be rolled back: {}", f.text)));
            return Vec::new();
        }
        if self.refuse_if_busy() {
            return Vec::new();
        }
        let mut params = BTreeMap::new();
        params.insert("worker".to_string(), name.clone());
        // The run goes where the plan on screen said, whatever is deployed meanwhile.
        if let [t] = plan.target.as_slice() {
            params.insert("to".to_string(), t.version_id.clone());
        }
        let id = "worker-rollback".to_string();
        let job = self.new_job(format!("playbook {id}"), None);
        self.guide_open(None);
        if let Some(g) = &mut self.guide {
            g.job = Some(job);
        }
        // What was read before the run is stale once it ends.
        self.workers.detail.remove(&name);
        vec![Command::StartPlaybook { job, id, params }]
    }
}
