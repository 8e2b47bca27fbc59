//! The commit of a build and what follows it: the job's pointers move forward to the build where its
//! result qualifies, and the job's index lists it. Both are compare-and-swap updates that never move
//! backwards.

use crate::format::{
    layout::{self, JobPath, PERMALINKS},
    manifest::{BuildSummary, JobIndex, Manifest, Pointer},
};

use super::{BuildError, build::BuildTask};

impl BuildTask {
    /// Moves the job's pointers forward to this build where its result qualifies, and adds it to the
    /// job's index. Both are compare-and-swap updates that never move backwards.
    pub(super) async fn publish(&self, m: &Manifest) -> Result<(), BuildError> {
        let store = &self.shared.store;
        let manifest_key = self.layout.manifest_key(&self.job, m.number);
        let pointer = m.pointer(manifest_key);
        for link in PERMALINKS {
            if !link.accepts(&m.result) {
                continue;
            }
            let key = layout::path(&self.layout.pointer_key(&self.job, link));
            store
                .update(&key, |cur| {
                    let older = cur
                        .and_then(|b| serde_json::from_slice::<Pointer>(b).ok())
                        .is_none_or(|p| p.number < pointer.number);
                    older.then(|| pointer.to_json())
                })
                .await?;
        }
        let key = layout::path(&self.layout.index_key(&self.job));
        let summary = summary_of(m);
        store
            .update(&key, |cur| {
                let mut ix = parse_index(cur, &self.job);
                if ix.builds.get(&m.number) == Some(&summary) && !ix.failed.contains_key(&m.number)
                {
                    return None;
                }
                ix.failed.remove(&m.number);
                ix.builds.insert(m.number, summary.clone());
                Some(ix.to_json())
            })
            .await?;
        Ok(())
    }
}

pub(super) fn parse_index(cur: Option<&[u8]>, job: &JobPath) -> JobIndex {
    cur.and_then(|b| JobIndex::parse(b, "index").ok())
        .unwrap_or_else(|| JobIndex::new(job.clone()))
}

pub(super) fn summary_of(m: &Manifest) -> BuildSummary {
    BuildSummary {
        result: m.result.clone(),
        timestamp: m.timestamp,
        artifacts: m.artifacts.len(),
        size: m.total_size(),
    }
}
