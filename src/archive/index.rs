//! Changes of a job's `index.json`. Each is an [`IndexChange`]: the archive writes it to the store with a
//! compare-and-swap update (retried when another writer got there first, skipped when it changes
//! nothing), and the worker applies the very same change to its in-memory copy of the index, so the two
//! cannot drift apart.
//!
//! The index is derived from manifests: a build it lists always has a manifest (publication adds a build
//! only after its commit, retention deletes the manifest before it unlists the build). A missing or
//! unreadable index is started afresh by the worker's changes; retention only changes an index that is
//! there and readable. An index in a newer format is never changed: the change is refused.

use crate::{
    format::{
        layout::{self, JobPath, Layout},
        manifest::{BuildSummary, Failure, JobIndex, Manifest},
    },
    store::{Created, StoreError},
};

use super::{Archive, ArchiveError};

/// One change of a job's index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexChange {
    /// A build was committed: the index lists it (and forgets an earlier give-up on it).
    Mirrored {
        /// The build.
        number: u64,
        /// What the index records of it.
        summary: BuildSummary,
    },
    /// Jenkins deleted a build before it was mirrored.
    Missed(u64),
    /// jam gave up on a build after its attempts.
    Failed {
        /// The build.
        number: u64,
        /// The attempts and the last error.
        failure: Failure,
    },
    /// Retention deleted these builds: the index no longer lists them, and its floor rises to the newest
    /// of them so that a worker does not mirror again a build Jenkins still keeps.
    Retired(Vec<u64>),
}

impl IndexChange {
    /// The change that lists a committed build.
    pub fn mirrored(m: &Manifest) -> IndexChange {
        IndexChange::Mirrored {
            number: m.number,
            summary: BuildSummary {
                result: m.result.clone(),
                timestamp: m.timestamp,
                artifacts: m.artifacts.len(),
                size: m.total_size(),
            },
        }
    }

    /// Applies the change to an index; returns whether the index changed.
    pub fn apply(&self, ix: &mut JobIndex) -> bool {
        match self {
            IndexChange::Mirrored { number, summary } => {
                if ix.builds.get(number) == Some(summary) && !ix.failed.contains_key(number) {
                    return false;
                }
                ix.failed.remove(number);
                ix.builds.insert(*number, summary.clone());
                true
            }
            IndexChange::Missed(number) => ix.missed.insert(*number),
            IndexChange::Failed { number, failure } => {
                ix.failed.insert(*number, failure.clone()).as_ref() != Some(failure)
            }
            IndexChange::Retired(numbers) => {
                let before = (ix.builds.len(), ix.floor);
                for n in numbers {
                    ix.builds.remove(n);
                }
                ix.floor = ix.floor.max(numbers.iter().copied().max().unwrap_or(0));
                before != (ix.builds.len(), ix.floor)
            }
        }
    }

    /// Whether the change starts a fresh index where there is none (or only an unreadable one). The
    /// worker's changes do; retention's, which only remove, do not.
    fn starts_index(&self) -> bool {
        !matches!(self, IndexChange::Retired(_))
    }
}

impl Archive {
    /// Writes a change to the job's index (compare-and-swap); returns whether anything was written.
    pub async fn change_index(
        &self,
        layout: &Layout,
        job: &JobPath,
        change: &IndexChange,
    ) -> Result<bool, ArchiveError> {
        let key = layout::path(&layout.index_key(job));
        let mut refused = None;
        let written = self
            .store
            .update(&key, |cur| {
                let mut ix = match cur.map(|b| JobIndex::parse(b, key.as_ref())) {
                    Some(Ok(ix)) => ix,
                    Some(Err(e)) if e.is_newer_format() => {
                        refused = Some(e);
                        return None;
                    }
                    _ if change.starts_index() => JobIndex::new(job.clone()),
                    _ => return None,
                };
                change.apply(&mut ix).then(|| ix.to_json())
            })
            .await?;
        match refused {
            Some(e) => Err(ArchiveError::NewerFormat(e)),
            None => Ok(written),
        }
    }

    /// The job's index as the worker reads it; `None` when the job has none yet. An index that does not
    /// parse is an error naming its key; one in a newer format is refused.
    pub async fn read_index(
        &self,
        layout: &Layout,
        job: &JobPath,
    ) -> Result<Option<JobIndex>, ArchiveError> {
        let key = layout::path(&layout.index_key(job));
        let Some((bytes, _)) = self.store.get(&key).await? else {
            return Ok(None);
        };
        match JobIndex::parse(&bytes, key.as_ref()) {
            Ok(ix) => Ok(Some(ix)),
            Err(e) if e.is_newer_format() => Err(ArchiveError::NewerFormat(e)),
            Err(e) => Err(StoreError::BadKey {
                key: key.to_string(),
                message: e.to_string(),
            }
            .into()),
        }
    }

    /// The index of a job the worker sees for the first time, with the `backfill` policy's `floor`. A
    /// floor above zero is written with a conditional create, so the policy's cut survives a restart;
    /// when another writer's index is already there, nothing is written and that index is returned.
    pub async fn first_sight(
        &self,
        layout: &Layout,
        job: &JobPath,
        floor: u64,
    ) -> Result<JobIndex, ArchiveError> {
        let mut ix = JobIndex::new(job.clone());
        ix.floor = floor;
        if floor == 0 {
            return Ok(ix);
        }
        let key = layout::path(&layout.index_key(job));
        if self.store.create(&key, ix.to_json()).await? == Created::Created {
            return Ok(ix);
        }
        Ok(self.read_index(layout, job).await?.unwrap_or(ix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn summary(size: u64) -> BuildSummary {
        BuildSummary {
            result: "SUCCESS".into(),
            timestamp: 1,
            artifacts: 1,
            size,
        }
    }

    #[test]
    fn changes_apply_once() {
        let mut ix = JobIndex::new(JobPath::new(["app"]));
        let failed = IndexChange::Failed {
            number: 3,
            failure: Failure {
                attempts: 5,
                error: "boom".into(),
                at: "2024-01-01T00:00:00Z".into(),
            },
        };
        assert!(failed.apply(&mut ix));
        assert!(
            !failed.apply(&mut ix),
            "the same failure again changes nothing"
        );
        let mirrored = IndexChange::Mirrored {
            number: 3,
            summary: summary(10),
        };
        assert!(mirrored.apply(&mut ix));
        assert!(
            ix.failed.is_empty(),
            "a committed build is no longer failed"
        );
        assert!(!mirrored.apply(&mut ix));
        assert!(IndexChange::Missed(4).apply(&mut ix));
        assert!(!IndexChange::Missed(4).apply(&mut ix));
        for n in [5, 6] {
            IndexChange::Mirrored {
                number: n,
                summary: summary(n),
            }
            .apply(&mut ix);
        }
        assert!(IndexChange::Retired(vec![3, 5]).apply(&mut ix));
        assert_eq!(ix.builds.keys().copied().collect::<Vec<_>>(), [6]);
        assert_eq!(ix.floor, 5);
        assert!(!IndexChange::Retired(vec![3, 5]).apply(&mut ix));
    }

    #[tokio::test]
    async fn first_sight_never_replaces_an_index_another_writer_made() {
        let store = Store::open(&crate::config::StoreConfig::new("memory://")).unwrap();
        let archive = Archive::new(store);
        let layout = Layout::new("ci");
        let job = JobPath::new(["app"]);
        // No floor: nothing is written.
        let ix = archive.first_sight(&layout, &job, 0).await.unwrap();
        assert_eq!(ix.floor, 0);
        assert!(archive.read_index(&layout, &job).await.unwrap().is_none());
        // A floor is written when there is no index...
        let ix = archive.first_sight(&layout, &job, 7).await.unwrap();
        assert_eq!(ix.floor, 7);
        let change = IndexChange::Missed(9);
        assert!(archive.change_index(&layout, &job, &change).await.unwrap());
        // ...and a second first sight (another worker's) adopts what is there instead of replacing it.
        let ix = archive.first_sight(&layout, &job, 3).await.unwrap();
        assert_eq!((ix.floor, ix.missed.len()), (7, 1));
        let stored = archive.read_index(&layout, &job).await.unwrap().unwrap();
        assert_eq!(stored, ix);
    }
}
