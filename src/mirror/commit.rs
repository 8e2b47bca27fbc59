//! A build task's commit step, written by the archive ([`crate::archive::commit`]): the repair of a build
//! an earlier run committed but did not publish, and the commit and publication of a freshly transferred
//! build.

use crate::{archive::Committed, format::manifest::Manifest};

use super::{BuildError, build::BuildTask};

impl BuildTask {
    /// The manifest of this build when an earlier run (or another worker) committed it already.
    pub(super) async fn committed(&self) -> Result<Option<Manifest>, BuildError> {
        Ok(self
            .shared
            .archive
            .committed(&self.layout, &self.job, self.number)
            .await?)
    }

    /// Commits this build (`SHA256SUMS`, then the manifest), then publishes it.
    pub(super) async fn commit(&self, m: &Manifest) -> Result<(), BuildError> {
        let archive = &self.shared.archive;
        if archive.commit(&self.layout, &self.job, m).await? == Committed::Already {
            self.shared.fleet().commit_lost();
            tracing::info!(job = %self.job, build = self.number, "another worker committed this build first");
        }
        self.publish(m).await
    }

    /// Moves the job's pointers forward to this build where its result qualifies, and adds it to the
    /// job's index.
    pub(super) async fn publish(&self, m: &Manifest) -> Result<(), BuildError> {
        Ok(self
            .shared
            .archive
            .publish(&self.layout, &self.job, m)
            .await?)
    }
}
