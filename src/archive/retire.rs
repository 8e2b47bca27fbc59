//! Retention's deletion of mirrored builds, in the order that keeps the store's invariant "a build is
//! mirrored if and only if its manifest exists": first every doomed build's `manifest.json` (the commit
//! marker), then its `SHA256SUMS` and artifacts, and last the job's `index.json`, with a compare-and-swap
//! update ([`IndexChange::Retired`]) that unlists the builds and raises the index's floor. A deletion
//! interrupted anywhere leaves builds that are either intact, or have no manifest and are still listed in
//! the index; retiring them again finishes them.

use crate::format::layout::{self, JobPath, Layout};

use super::{Archive, ArchiveError, IndexChange};

impl Archive {
    /// Deletes the given builds of a job (see the module's documentation for the order).
    pub async fn retire(
        &self,
        layout: &Layout,
        job: &JobPath,
        numbers: &[u64],
    ) -> Result<(), ArchiveError> {
        // 1. Commit markers first: from here on no doomed build looks mirrored.
        for &n in numbers {
            self.store
                .delete(&layout::path(&layout.manifest_key(job, n)))
                .await?;
        }
        // 2. Checksums, then every other object under the build's prefix (the artifacts).
        for &n in numbers {
            self.store
                .delete(&layout::path(&layout.sums_key(job, n)))
                .await?;
            let prefix = layout::path(&layout.build_prefix(job, n));
            for meta in self.store.list_all(&prefix).await? {
                self.store.delete(&meta.location).await?;
            }
        }
        // 3. The index, last, with compare-and-swap: a worker may be adding builds to it meanwhile.
        self.change_index(layout, job, &IndexChange::Retired(numbers.to_vec()))
            .await?;
        Ok(())
    }
}
