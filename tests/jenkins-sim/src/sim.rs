//! The [`Sim`] handle for Rust tests and benches.
//!
//! A [`Sim`] runs its listeners on its own Tokio runtime in a background thread, so it works
//! the same from `#[test]`, `#[tokio::test]` (any flavour) or a benchmark, and it never starves
//! when the test thread blocks. Dropping the handle stops the server. Every mutation goes
//! through a [`Command`], the same one `POST /_sim/command` takes.

use crate::control::{Command, apply};
use crate::faults::{Fault, FaultSet};
use crate::model::{Model, SimError};
use crate::notify::{NoticeRecord, Notifier, NotifierSet};
use crate::scenario::{
    ArtifactSpec, BuildResult, BuildSpec, ItemSpec, RedirectMode, Scenario, UserSpec,
};
use crate::server::{RequestRecord, Shared};
use serde_json::Value;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// A running simulated Jenkins controller.
pub struct Sim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    s3_addr: SocketAddr,
    rr_addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim").field("addr", &self.addr).finish()
    }
}

impl Sim {
    /// Starts on `127.0.0.1:0`. Panics if the scenario is inconsistent or binding fails
    /// (tests want that); use [`Sim::start_on`] to handle errors.
    pub fn start(scenario: Scenario) -> Sim {
        Self::start_on("127.0.0.1:0".parse().expect("address"), scenario)
            .unwrap_or_else(|e| panic!("starting jenkins-sim: {e}"))
    }

    /// Starts on `addr` (the S3 and resource-root listeners take free ports on the same IP).
    pub fn start_on(addr: SocketAddr, scenario: Scenario) -> std::io::Result<Sim> {
        let main = TcpListener::bind(addr)?;
        let side = SocketAddr::new(addr.ip(), 0);
        let s3 = TcpListener::bind(side)?;
        let rr = TcpListener::bind(side)?;
        for l in [&main, &s3, &rr] {
            l.set_nonblocking(true)?;
        }
        let (addr, s3_addr, rr_addr) = (main.local_addr()?, s3.local_addr()?, rr.local_addr()?);
        let main_url = format!("http://{addr}/");
        let model = Model::new(&scenario, main_url.clone())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        let mut faults = FaultSet::default();
        for f in &scenario.faults {
            faults.add(f.clone()).map_err(invalid)?;
        }
        let mut notifiers = NotifierSet::default();
        for n in &scenario.notifications {
            notifiers.add(n.clone()).map_err(invalid)?;
        }
        let shared = Arc::new(Shared {
            model: RwLock::new(model),
            faults: Mutex::new(faults),
            notifiers: Mutex::new(notifiers),
            notices: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            restart_until: Mutex::new(None),
            main_url,
            s3_url: format!("http://{s3_addr}/"),
            rr_url: format!("http://{rr_addr}/"),
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let sh = shared.clone();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("jenkins-sim")
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("jenkins-sim".into())
            .spawn(move || {
                rt.block_on(async move {
                    let mk = |l: TcpListener| tokio::net::TcpListener::from_std(l);
                    let (Ok(main), Ok(s3), Ok(rr)) = (mk(main), mk(s3), mk(rr)) else {
                        return;
                    };
                    let m = axum::serve(
                        main,
                        axum::Router::new()
                            .fallback(crate::server::main_handler)
                            .with_state(sh.clone()),
                    );
                    let s = axum::serve(
                        s3,
                        axum::Router::new()
                            .fallback(crate::server::s3_handler)
                            .with_state(sh.clone()),
                    );
                    let r = axum::serve(
                        rr,
                        axum::Router::new()
                            .fallback(crate::server::rr_handler)
                            .with_state(sh.clone()),
                    );
                    tokio::select! {
                        _ = rx => {}
                        _ = async { tokio::join!(m, s, r) } => {}
                    }
                });
                rt.shutdown_background();
            })?;
        Ok(Sim {
            shared,
            addr,
            s3_addr,
            rr_addr,
            stop: Some(tx),
        })
    }

    /// Base URL of the controller, with a trailing slash (`http://127.0.0.1:PORT/`).
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Listen address of the controller.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL of the fake S3 listener.
    pub fn s3_url(&self) -> String {
        format!("http://{}/", self.s3_addr)
    }

    /// Base URL of the resource-root listener.
    pub fn resource_root_url(&self) -> String {
        format!("http://{}/", self.rr_addr)
    }

    /// The root URL used in `url` fields (configured, else [`Sim::url`]).
    pub fn root_url(&self) -> String {
        self.shared.model.read().unwrap().root().to_string()
    }

    /// Applies a control command (what `POST /_sim/command` does).
    pub fn apply(&self, cmd: Command) -> Result<Value, SimError> {
        apply(&self.shared, cmd)
    }

    fn ok(&self, cmd: Command) -> Result<(), SimError> {
        self.apply(cmd).map(|_| ())
    }

    /// Adds an item under `parent` (full name, `""` for the root); returns its full name.
    pub fn add_item(&self, parent: &str, item: ItemSpec) -> Result<String, SimError> {
        let v = self.apply(Command::AddItem {
            parent: parent.into(),
            item,
        })?;
        Ok(v["full_name"].as_str().unwrap_or_default().to_string())
    }

    /// Adds a folder.
    pub fn add_folder(&self, parent: &str, name: &str) -> Result<String, SimError> {
        self.add_item(parent, ItemSpec::folder(name))
    }

    /// Adds a freestyle job.
    pub fn add_job(&self, parent: &str, name: &str) -> Result<String, SimError> {
        self.add_item(parent, ItemSpec::freestyle(name))
    }

    /// Removes an item.
    pub fn remove_item(&self, path: &str) -> Result<(), SimError> {
        self.ok(Command::RemoveItem { path: path.into() })
    }

    /// Adds a build to `job` (full name); returns its number once the build's notices (if
    /// any notifier applies) have been delivered: QUEUED and STARTED for a running build, every
    /// phase for a finished one.
    pub fn add_build(&self, job: &str, build: BuildSpec) -> Result<u64, SimError> {
        let v = self.apply(Command::AddBuild {
            job: job.into(),
            build,
        })?;
        Ok(v["number"].as_u64().unwrap_or_default())
    }

    /// Archives more artifacts into a build.
    pub fn add_artifacts(
        &self,
        job: &str,
        number: u64,
        artifacts: Vec<ArtifactSpec>,
    ) -> Result<(), SimError> {
        self.ok(Command::AddArtifacts {
            job: job.into(),
            number,
            artifacts,
        })
    }

    /// Finishes a running build with `result` (duration: time since its timestamp); returns
    /// once its notices (Pipeline `post`, COMPLETED, FINALIZED) have been delivered.
    pub fn finish_build(
        &self,
        job: &str,
        number: u64,
        result: BuildResult,
    ) -> Result<(), SimError> {
        self.ok(Command::FinishBuild {
            job: job.into(),
            number,
            result,
            duration_ms: None,
        })
    }

    /// Sets the result of a build (may still be running).
    pub fn set_result(
        &self,
        job: &str,
        number: u64,
        result: Option<BuildResult>,
    ) -> Result<(), SimError> {
        self.ok(Command::SetResult {
            job: job.into(),
            number,
            result,
        })
    }

    /// Deletes a build.
    pub fn delete_build(&self, job: &str, number: u64) -> Result<(), SimError> {
        self.ok(Command::DeleteBuild {
            job: job.into(),
            number,
        })
    }

    /// Discards a build's artifacts.
    pub fn discard_artifacts(&self, job: &str, number: u64) -> Result<(), SimError> {
        self.ok(Command::DiscardArtifacts {
            job: job.into(),
            number,
        })
    }

    /// Adds a user with one token.
    pub fn add_user(&self, name: &str, token: &str) -> Result<(), SimError> {
        self.ok(Command::AddUser {
            user: UserSpec::new(name, token),
        })
    }

    /// Adds a valid token to a user.
    pub fn add_token(&self, user: &str, token: &str) -> Result<(), SimError> {
        self.ok(Command::AddToken {
            user: user.into(),
            token: token.into(),
        })
    }

    /// Revokes a token.
    pub fn revoke_token(&self, user: &str, token: &str) -> Result<(), SimError> {
        self.ok(Command::RevokeToken {
            user: user.into(),
            token: token.into(),
        })
    }

    /// Revokes all tokens of `user` and returns a new one (`11` + 32 hex).
    pub fn rotate_token(&self, user: &str) -> Result<String, SimError> {
        let v = self.apply(Command::RotateToken { user: user.into() })?;
        Ok(v["token"].as_str().unwrap_or_default().to_string())
    }

    /// Grants or removes a user's Overall/Read.
    pub fn set_overall_read(&self, user: &str, enabled: bool) -> Result<(), SimError> {
        self.ok(Command::SetOverallRead {
            user: user.into(),
            enabled,
        })
    }

    /// Turns anonymous read on or off.
    pub fn set_anonymous_read(&self, enabled: bool) {
        let _ = self.ok(Command::SetAnonymousRead { enabled });
    }

    /// Restricts who may read an item.
    pub fn set_visible_to(&self, path: &str, users: Option<Vec<String>>) -> Result<(), SimError> {
        self.ok(Command::SetVisibleTo {
            path: path.into(),
            users,
        })
    }

    /// Installs a fault; returns its id.
    pub fn add_fault(&self, fault: Fault) -> Result<u64, SimError> {
        let v = self.apply(Command::AddFault { fault })?;
        Ok(v["id"].as_u64().unwrap_or_default())
    }

    /// Removes a fault.
    pub fn remove_fault(&self, id: u64) -> Result<(), SimError> {
        self.ok(Command::RemoveFault { id })
    }

    /// Removes all faults.
    pub fn clear_faults(&self) {
        let _ = self.ok(Command::ClearFaults);
    }

    /// Installs a build notice endpoint; returns its id.
    pub fn add_notifier(&self, notifier: Notifier) -> Result<u64, SimError> {
        let v = self.apply(Command::AddNotifier { notifier })?;
        Ok(v["id"].as_u64().unwrap_or_default())
    }

    /// Removes a notice endpoint.
    pub fn remove_notifier(&self, id: u64) -> Result<(), SimError> {
        self.ok(Command::RemoveNotifier { id })
    }

    /// Removes all notice endpoints.
    pub fn clear_notifiers(&self) {
        let _ = self.ok(Command::ClearNotifiers);
    }

    /// Every notice attempt so far (also `GET /_sim/notices`).
    pub fn notices(&self) -> Vec<NoticeRecord> {
        self.shared.notices.lock().unwrap().clone()
    }

    /// Forgets the notice log.
    pub fn clear_notices(&self) {
        let _ = self.ok(Command::ClearNotices);
    }

    /// Answers 503 to everything for `d`.
    pub fn set_restarting(&self, d: Duration) {
        let _ = self.ok(Command::SetRestarting {
            ms: d.as_millis() as u64,
        });
    }

    /// Changes the configured root URL.
    pub fn set_root_url(&self, url: Option<&str>) {
        let _ = self.ok(Command::SetRootUrl {
            url: url.map(str::to_string),
        });
    }

    /// Changes the artifact redirect mode.
    pub fn set_redirect_mode(&self, mode: RedirectMode) {
        let _ = self.ok(Command::SetRedirectMode { mode });
    }

    /// Every request logged so far (control requests excluded).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Number of requests logged so far.
    pub fn request_count(&self) -> usize {
        self.shared.log.lock().unwrap().len()
    }

    /// Forgets logged requests.
    pub fn clear_requests(&self) {
        self.shared.log.lock().unwrap().clear();
    }

    /// Facts about one artifact, to check what a client stored.
    pub fn artifact(&self, job: &str, number: u64, path: &str) -> Result<ArtifactInfo, SimError> {
        let m = self.shared.model.read().unwrap();
        let (ctx, item) = m.find(job)?;
        let b = item
            .builds
            .get(&number)
            .ok_or_else(|| SimError::NotFound(format!("build {job} #{number}")))?;
        let a = b
            .artifacts
            .iter()
            .find(|a| a.path == path)
            .ok_or_else(|| SimError::NotFound(format!("artifact {path} of {job} #{number}")))?;
        Ok(ArtifactInfo {
            job: ctx.full_name,
            number,
            path: a.path.clone(),
            content: a.content.clone(),
            fingerprinted: a.fingerprint,
            last_modified_ms: a.last_modified,
        })
    }
}

/// What a simulated artifact is, for checking downloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactInfo {
    /// Job full name.
    pub job: String,
    /// Build number.
    pub number: u64,
    /// Relative path.
    pub path: String,
    /// Its bytes (use [`crate::Content::digests`] for MD5/SHA-256).
    pub content: crate::content::Content,
    /// Whether the build recorded its fingerprint.
    pub fingerprinted: bool,
    /// mtime, epoch ms (`Last-Modified`).
    pub last_modified_ms: i64,
}

impl ArtifactInfo {
    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.content.len()
    }

    /// MD5 and SHA-256 of the content (reads it all; fast for generated content).
    pub fn digests(&self) -> crate::content::Digests {
        self.content.digests()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
