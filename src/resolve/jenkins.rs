//! Names resolved on a Jenkins controller (for `jam fetch --from jenkins`): the job a typed name means,
//! trying the ways its parts can form item names, and the finished build a selector means.

use crate::{
    archive::catalog::CatalogError,
    format::layout::JobPath,
    jenkins::{JenkinsClient, model::BuildDetails},
};

use super::{BuildSelector, JobArg, NotFound, Place, ResolveError, splits};

/// A finished build on a controller.
#[derive(Debug, Clone)]
pub struct JenkinsBuild {
    /// The job.
    pub job: JobPath,
    /// The build number.
    pub number: u64,
    /// What Jenkins reports about it (result, artifacts, fingerprints).
    pub details: BuildDetails,
}

/// The job a name or URL means on the controller.
pub async fn job(client: &JenkinsClient, arg: &JobArg) -> Result<JobPath, ResolveError> {
    let name = match arg {
        JobArg::Url { job, .. } => return Ok(job.clone()),
        JobArg::Name(n) => n,
    };
    let parts: Vec<&str> = name.split('/').filter(|s| !s.is_empty()).collect();
    let mut found = Vec::new();
    for (i, candidate) in splits(&parts).into_iter().enumerate() {
        match client.job_builds(&candidate).await {
            Ok(_) if i == 0 => return Ok(candidate),
            Ok(_) => found.push(candidate),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(NotFound::JenkinsJob {
            name: name.clone(),
            url: client.base().to_string(),
        }
        .into()),
        _ => Err(CatalogError::Ambiguous {
            name: name.clone(),
            candidates: found.iter().map(JobPath::full_name).collect(),
        }
        .into()),
    }
}

/// The finished build a selector means, with its details.
pub async fn build(
    client: &JenkinsClient,
    arg: &JobArg,
    build: BuildSelector,
) -> Result<JenkinsBuild, ResolveError> {
    let job = job(client, arg).await?;
    let number = match build {
        BuildSelector::Number(n) => Some(n),
        BuildSelector::Link(link) => client.permalink(&job, link.name()).await?,
    };
    let details = match number {
        Some(n) => match client.build(&job, n).await {
            Ok(d) => Some((n, d)),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let Some((number, details)) = details else {
        // For the message: the builds Jenkins keeps (one more request, on this failure path only).
        let held = match client.job_builds(&job).await {
            Ok(b) => b.builds.iter().map(|b| b.number).collect(),
            Err(_) => Vec::new(),
        };
        return Err(NotFound::Build {
            job: job.full_name(),
            build,
            place: Place::Jenkins {
                url: client.base().to_string(),
            },
            held,
        }
        .into());
    };
    if !details.finished() {
        return Err(NotFound::Unfinished {
            job: job.full_name(),
            number,
            url: client.base().to_string(),
        }
        .into());
    }
    Ok(JenkinsBuild {
        job,
        number,
        details,
    })
}
