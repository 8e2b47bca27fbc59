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
        version::{newer_format, parse_document},
    },
    store::Created,
};

use super::{Archive, ArchiveError, IndexChange};

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
    /// the build is mirrored again and the conditional create leaves the stored one alone. One in a newer
    /// format is refused.
    pub async fn committed(
        &self,
        layout: &Layout,
        job: &JobPath,
        number: u64,
    ) -> Result<Option<Manifest>, ArchiveError> {
        let key = layout::path(&layout.manifest_key(job, number));
        let Some((bytes, _)) = self.store.get(&key).await? else {
            return Ok(None);
        };
        match parse_document(&bytes, key.as_ref()) {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.is_newer_format() => Err(ArchiveError::NewerFormat(e)),
            Err(_) => Ok(None),
        }
    }

    /// Commits a build whose artifacts are all stored and verified: `SHA256SUMS`, then the manifest
    /// (conditional create).
    pub async fn commit(
        &self,
        layout: &Layout,
        job: &JobPath,
        m: &Manifest,
    ) -> Result<Committed, ArchiveError> {
        let sums = layout::path(&layout.sums_key(job, m.number));
        self.store.put(&sums, m.sha256sums().into()).await?;
        let key = layout::path(&layout.manifest_key(job, m.number));
        Ok(match self.store.create(&key, m.to_json()).await? {
            Created::Created => Committed::Now,
            Created::Existed => Committed::Already,
        })
    }

    /// Publishes a committed build: moves the job's pointers forward to it where its result qualifies,
    /// then adds it to the job's index. Both are compare-and-swap updates that never move backwards, and
    /// never replace a document in a newer format.
    pub async fn publish(
        &self,
        layout: &Layout,
        job: &JobPath,
        m: &Manifest,
    ) -> Result<(), ArchiveError> {
        let pointer = m.pointer(layout.manifest_key(job, m.number));
        for link in PERMALINKS {
            if !link.accepts(&m.result) {
                continue;
            }
            let key = layout::path(&layout.pointer_key(job, link));
            let mut refused = None;
            self.store
                .update(&key, |cur| {
                    refused = cur.and_then(|b| newer_format(b, key.as_ref()));
                    let older = cur
                        .and_then(|b| serde_json::from_slice::<Pointer>(b).ok())
                        .is_none_or(|p| p.number < pointer.number);
                    (older && refused.is_none()).then(|| pointer.to_json())
                })
                .await?;
            if let Some(e) = refused {
                return Err(ArchiveError::NewerFormat(e));
            }
        }
        self.change_index(layout, job, &IndexChange::mirrored(m))
            .await?;
        Ok(())
    }
}
