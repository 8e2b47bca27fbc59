//! `jam doctor`: checks a set-up end to end and says what to fix.
//!
//! With a loaded configuration it checks, in order: each controller (reachable, and who jam is
//! authenticated as, through `/whoAmI`), that the controller lets jam read the configured jobs (one poll,
//! the include globs, and one job's build list), and the store (a write, a read back, a conditional create
//! that must be refused on the existing object and honoured on a new one, and deletes) under
//! `.jam/doctor/`. Every check yields a [`Check`]; a failed one says what to do. Nothing here changes the
//! mirror: the probe objects are removed again.

use bytes::Bytes;

use crate::{
    config::{Config, JenkinsConfig},
    format::layout,
    jenkins::{JenkinsClient, JenkinsError},
    ops::http::{CHECK_TIMEOUT, check_client_config},
    store::{Created, Store},
};

pub use crate::ops::Check;

fn pass(name: &str, detail: impl Into<String>) -> Check {
    Check {
        name: name.to_string(),
        ok: true,
        detail: detail.into(),
    }
}

fn fail(name: &str, detail: impl Into<String>) -> Check {
    Check {
        name: name.to_string(),
        ok: false,
        detail: detail.into(),
    }
}

/// A Jenkins error, with what to do when the message does not already say.
fn jenkins_fix(e: &JenkinsError) -> String {
    match e {
        JenkinsError::Transport { .. } => format!(
            "{e}; check the url in [[jenkins]] (or JENKINS_URL), that the controller is up, and that this host may reach it"
        ),
        JenkinsError::NotFound { .. } => format!(
            "{e}; check that the url in [[jenkins]] is the controller's base URL (with its context path, e.g. /jenkins/)"
        ),
        _ => e.to_string(),
    }
}

/// Runs every check for a loaded configuration.
pub async fn run(cfg: &Config) -> Vec<Check> {
    let mut checks = vec![pass(
        "config",
        match &cfg.file {
            Some(f) => format!("{} is valid", f.display()),
            None => "no config file; the environment and flags are valid".into(),
        },
    )];
    if cfg.jenkins.is_empty() {
        checks.push(fail(
            "jenkins",
            "no controller configured: add a [[jenkins]] table, or set JENKINS_URL, JENKINS_USER and JENKINS_API_TOKEN",
        ));
    }
    for j in &cfg.jenkins {
        checks.extend(controller(j).await);
    }
    checks.extend(store(cfg).await);
    checks
}

/// Checks one controller: `/whoAmI`, then one poll and one job's build list.
pub async fn controller(j: &JenkinsConfig) -> Vec<Check> {
    let auth = format!("jenkins {} auth", j.name);
    let jobs = format!("jenkins {} jobs", j.name);
    let client = match JenkinsClient::new(&check_client_config(j)) {
        Ok(c) => c,
        Err(e) => return vec![fail(&auth, e.to_string())],
    };
    let mut out = Vec::new();
    let who = crate::ops::http::check_controller(&client).await;
    let authenticated = who.ok;
    out.push(Check { name: auth, ..who });
    if !authenticated {
        return out;
    }
    let polled = match tokio::time::timeout(CHECK_TIMEOUT, client.poll(j.folder_depth)).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            out.push(fail(&jobs, format!("listing jobs: {}", jenkins_fix(&e))));
            return out;
        }
        Err(_) => {
            out.push(fail(
                &jobs,
                format!("listing jobs took longer than {}s", CHECK_TIMEOUT.as_secs()),
            ));
            return out;
        }
    };
    let visible = polled.jobs.len();
    let matching: Vec<_> = polled
        .jobs
        .iter()
        .filter(|p| j.jobs.matches(&p.path.full_name()))
        .collect();
    if matching.is_empty() {
        out.push(fail(
            &jobs,
            format!(
                "user '{}' sees {visible} job(s) and none matches the include/exclude globs: check the globs, and \
                 that the user has Job/Read on the jobs to mirror (and Overall/Read)",
                j.user
            ),
        ));
        return out;
    }
    // One job's build list proves Job/Read (the poll alone can list names the user cannot open).
    let sample = &matching[0].path;
    match tokio::time::timeout(CHECK_TIMEOUT, client.job_builds(sample)).await {
        Ok(Ok(b)) => out.push(pass(
            &jobs,
            format!(
                "{} of {visible} visible job(s) match the globs; '{}' lists {} build(s)",
                matching.len(),
                sample.full_name(),
                b.builds.len()
            ),
        )),
        Ok(Err(e)) => out.push(fail(
            &jobs,
            format!(
                "reading the builds of '{}': {}",
                sample.full_name(),
                jenkins_fix(&e)
            ),
        )),
        Err(_) => out.push(fail(
            &jobs,
            format!(
                "reading the builds of '{}' took longer than {}s",
                sample.full_name(),
                CHECK_TIMEOUT.as_secs()
            ),
        )),
    }
    out
}

/// Checks the store: open, write, read back, conditional create (refused on an existing object, honoured
/// on a new one), delete.
pub async fn store(cfg: &Config) -> Vec<Check> {
    let store = match Store::open(&cfg.store) {
        Ok(s) => s,
        Err(e) => {
            return vec![fail(
                "store open",
                format!("{e}; fix [store] url (or JAM_STORE / --store)"),
            )];
        }
    };
    match tokio::time::timeout(CHECK_TIMEOUT * 3, store_checks(&store)).await {
        Ok(checks) => checks,
        Err(_) => vec![fail(
            "store",
            format!(
                "{} did not answer within {}s; check the endpoint, region and network",
                store.describe(),
                (CHECK_TIMEOUT * 3).as_secs()
            ),
        )],
    }
}

async fn store_checks(store: &Store) -> Vec<Check> {
    let mut out = Vec::new();
    let id = format!("{:016x}", rand::random::<u64>());
    let key = layout::path(&format!(".jam/doctor/{id}"));
    let key2 = layout::path(&format!(".jam/doctor/{id}-create"));
    let body = Bytes::from(format!("jam doctor probe {id}\n"));
    let hint = "; check that the store exists and the credentials may read, write, list and delete it \
                (s3:GetObject, s3:PutObject, s3:DeleteObject, s3:ListBucket)";
    let where_ = store.describe().to_string();
    if let Err(e) = store.put(&key, body.clone()).await {
        out.push(fail("store write", format!("{e}{hint}")));
        return out;
    }
    out.push(pass("store write", format!("wrote {where_}/{key}")));
    match store.get(&key).await {
        Ok(Some((got, _))) if got == body => out.push(pass("store read", "read back what was written")),
        Ok(Some(_)) => out.push(fail(
            "store read",
            "read back different bytes than were written: is something rewriting objects in the bucket?",
        )),
        Ok(None) => out.push(fail(
            "store read",
            "the object just written is not there: the store is not read-after-write consistent",
        )),
        Err(e) => out.push(fail("store read", format!("{e}{hint}"))),
    }
    let refused = store.create(&key, Bytes::from_static(b"second")).await;
    let fresh = store.create(&key2, body.clone()).await;
    match (refused, fresh) {
        (Ok(Created::Existed), Ok(Created::Created)) => out.push(pass(
            "store conditional create",
            "a create over an existing object is refused; on a new key it writes",
        )),
        (Ok(Created::Created), _) => out.push(fail(
            "store conditional create",
            "the store overwrote an existing object on a conditional create (If-None-Match ignored): manifests \
             are not protected; use a store that honours conditional writes (AWS S3, SeaweedFS, MinIO, Ceph), \
             and never let two workers share this one",
        )),
        (Err(e), _) | (_, Err(e)) => out.push(fail(
            "store conditional create",
            format!("{e}; the store must support conditional writes (If-None-Match)"),
        )),
        (Ok(Created::Existed), Ok(Created::Existed)) => out.push(fail(
            "store conditional create",
            "a create on a new key was refused as if the object existed",
        )),
    }
    let mut deleted = store.delete(&key).await.and(store.delete(&key2).await);
    if deleted.is_ok() {
        match store.head(&key).await {
            Ok(None) => {}
            Ok(Some(_)) => {
                out.push(fail(
                    "store delete",
                    "the probe object is still there after a delete; check s3:DeleteObject",
                ));
                return out;
            }
            Err(e) => deleted = Err(e),
        }
    }
    match deleted {
        Ok(()) => out.push(pass("store delete", "deleted the probe objects")),
        Err(e) => out.push(fail(
            "store delete",
            format!("{e}; jam needs s3:DeleteObject (retention, aborting uploads)"),
        )),
    }
    out
}
