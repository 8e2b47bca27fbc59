//! A build's commit and its publication.
//!
//! **Commit**: `SHA256SUMS` first, then the manifest with a conditional create. The manifest is the
//! commit marker: it is written only after every artifact it lists is stored and verified, and once it
//! exists the build counts as mirrored. When another writer created it first, that manifest stands.
//!
//! **Publication**: the job's pointers move forward to the build where its result qualifies (a
//! compare-and-swap that never moves a pointer back to an older build), then the job's index lists it.
//! A crash between commit and publication leaves a committed build the index does not list yet; the next
//! look at the job finds the manifest ([`Archive::committed`]) and publishes it again.

use crate::{
    format::{
        layout::{self, JobPath, Layout, PERMALINKS},
        manifest::{Manifest, Pointer},
    },
    store::{Created, StoreError},
};

use super::{Archive, IndexChange};

/// How a commit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// This writer created the manifest.
    Now,
    /// A manifest was already there (another writer committed the build first); nothing was replaced.
    Already,
}

impl Archive {
    /// The build's manifest when it is committed. A manifest that does not parse counts as not committed:
    /// the build is mirrored again and the conditional create leaves the stored one alone.
    pub async fn committed(
        &self,
        layout: &Layout,
        job: &JobPath,
        number: u64,
    ) -> Result<Option<Manifest>, StoreError> {
        let key = layout::path(&layout.manifest_key(job, number));
        Ok(self
            .store
            .get(&key)
            .await?
            .and_then(|(bytes, _)| serde_json::from_slice(&bytes).ok()))
    }

    /// Commits a build whose artifacts are all stored and verified: `SHA256SUMS`, then the manifest
    /// (conditional create).
    pub async fn commit(
        &self,
        layout: &Layout,
        job: &JobPath,
        m: &Manifest,
    ) -> Result<Committed, StoreError> {
        let sums = layout::path(&layout.sums_key(job, m.number));
        self.store.put(&sums, m.sha256sums().into()).await?;
        let key = layout::path(&layout.manifest_key(job, m.number));
        Ok(match self.store.create(&key, m.to_json()).await? {
            Created::Created => Committed::Now,
            Created::Existed => Committed::Already,
        })
    }

    /// Publishes a committed build: moves the job's pointers forward to it where its result qualifies,
    /// then adds it to the job's index. Both are compare-and-swap updates that never move backwards.
    pub async fn publish(
        &self,
        layout: &Layout,
        job: &JobPath,
        m: &Manifest,
    ) -> Result<(), StoreError> {
        let pointer = m.pointer(layout.manifest_key(job, m.number));
        for link in PERMALINKS {
            if !link.accepts(&m.result) {
                continue;
            }
            let key = layout::path(&layout.pointer_key(job, link));
            self.store
                .update(&key, |cur| {
                    let older = cur
                        .and_then(|b| serde_json::from_slice::<Pointer>(b).ok())
                        .is_none_or(|p| p.number < pointer.number);
                    older.then(|| pointer.to_json())
                })
                .await?;
        }
        self.change_index(layout, job, &IndexChange::mirrored(m))
            .await?;
        Ok(())
    }
}
