//! What the worker tells the archive about a controller, after each poll: the version the controller
//! answered with (`X-Jenkins`) and the classes of the mirrored jobs and of the folders above them, as a
//! [`ControllerInfo`]. It is written only when it differs from the stored record (read once, at the first
//! poll), so an idle cycle writes nothing. A failed write is logged and tried again after the next poll:
//! the record serves readers of the mirror, never the mirroring itself.

use std::collections::{BTreeMap, HashMap};

use crate::{
    config::JobFilter,
    format::{
        layout::{FORMAT_VERSION, JobPath, Layout},
        manifest::{ControllerInfo, now_rfc3339},
    },
    jenkins::{JenkinsClient, model::PollResult},
};

use super::Shared;

/// The record as the worker last wrote (or found) it; `None` until the first poll looked.
#[derive(Debug, Default)]
pub(super) struct Recorded(Option<ControllerInfo>);

/// The controller a poll was of: where its mirror lives, its client, and which of its jobs are mirrored.
pub(super) struct Polled<'a> {
    pub(super) layout: &'a Layout,
    pub(super) client: &'a JenkinsClient,
    pub(super) filter: &'a JobFilter,
}

impl Recorded {
    /// Records what a successful poll of `src` showed, if it differs from what is stored.
    pub(super) async fn note(&mut self, shared: &Shared, src: Polled<'_>, polled: &PollResult) {
        let info = seen(&src, polled);
        if self.0.is_none() {
            match shared.archive.catalog().controller(src.layout).await {
                Ok(stored) => self.0 = stored,
                Err(e) => {
                    tracing::warn!(controller = %src.client.name(), error = %e, "cannot read the controller record");
                }
            }
        }
        if self.0.as_ref().is_some_and(|r| r.same_as(&info)) {
            return;
        }
        match shared.archive.record_controller(src.layout, &info).await {
            Ok(()) => self.0 = Some(info),
            Err(e) => {
                tracing::warn!(controller = %src.client.name(), error = %e, "cannot write the controller record; trying again after the next poll");
            }
        }
    }
}

/// The record a poll shows: the jobs the filter mirrors, the folders above them, the version.
fn seen(src: &Polled<'_>, polled: &PollResult) -> ControllerInfo {
    let folders: HashMap<&JobPath, &String> = polled.folders.iter().map(|(p, c)| (p, c)).collect();
    let mut items = BTreeMap::new();
    for job in &polled.jobs {
        let full_name = job.path.full_name();
        if !src.filter.matches(&full_name) {
            continue;
        }
        items.insert(full_name, job.class.clone());
        let names = job.path.names();
        for depth in 1..names.len() {
            let folder = JobPath::new(names[..depth].iter().cloned());
            if let Some(class) = folders.get(&folder) {
                items.insert(folder.full_name(), (*class).clone());
            }
        }
    }
    ControllerInfo {
        format: FORMAT_VERSION,
        source: src.layout.source().to_string(),
        jenkins: src.client.base().to_string(),
        version: src.client.stats().controller_version(),
        items,
        recorded_at: now_rfc3339(),
    }
}
