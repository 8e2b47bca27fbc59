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

    /// Commits this build (`SHA256SUMS`, then the manifest), then publishes it; returns whether this
    /// worker's commit stood (`false`: another worker committed the build first, and its manifest stands).
    pub(super) async fn commit(&self, m: &Manifest) -> Result<bool, BuildError> {
        let archive = &self.shared.archive;
        if archive.commit(&self.layout, &self.job, m).await? == Committed::Already {
            self.shared.fleet().commit_lost();
            tracing::info!(job = %self.job, build = self.number, "another worker committed this build first");
            let theirs = self.committed().await?;
            let m = theirs.as_ref().unwrap_or(m);
            self.publish(m).await?;
            return Ok(false);
        }
        self.publish(m).await?;
        Ok(true)
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
