//! The control surface shared by the [`Sim`](crate::Sim) handle and the HTTP control endpoint
//! (`/_sim/…` on the controller listener): the [`Command`] enum, what each command does, and
//! the endpoint itself.

use crate::faults::Fault;
use crate::model::SimError;
use crate::notify::{self, Notifier};
use crate::scenario::{ArtifactSpec, BuildResult, BuildSpec, ItemSpec, RedirectMode, UserSpec};
use crate::server::Shared;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A control operation (the body of `POST /_sim/command`, tagged by `op`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Add a folder or job under `parent` (full name, `""` = root). Answers `{"full_name"}`.
    AddItem {
        /// Parent full name.
        #[serde(default)]
        parent: String,
        /// The item (may hold children and builds).
        item: ItemSpec,
    },
    /// Remove an item and everything below it.
    RemoveItem {
        /// Full name.
        path: String,
    },
    /// Add a build. Answers `{"number"}` once its notices (if any) are delivered: QUEUED and
    /// STARTED for a running build, all phases for a finished one.
    AddBuild {
        /// Job full name.
        job: String,
        /// The build.
        build: BuildSpec,
    },
    /// Archive more artifacts into an existing build.
    AddArtifacts {
        /// Job full name.
        job: String,
        /// Build number.
        number: u64,
        /// Artifacts.
        artifacts: Vec<ArtifactSpec>,
    },
    /// Finish a running build. Answers once its notices (Pipeline `post`, COMPLETED,
    /// FINALIZED) are delivered.
    FinishBuild {
        /// Job full name.
        job: String,
        /// Build number.
        number: u64,
        /// Result.
        result: BuildResult,
        /// Duration in ms (default: since the build's timestamp).
        #[serde(default)]
        duration_ms: Option<i64>,
    },
    /// Set (or clear) the result, e.g. while the build is still running.
    SetResult {
        /// Job full name.
        job: String,
        /// Build number.
        number: u64,
        /// Result.
        result: Option<BuildResult>,
    },
    /// Delete a build (its number becomes a gap).
    DeleteBuild {
        /// Job full name.
        job: String,
        /// Build number.
        number: u64,
    },
    /// Delete a build's artifacts (build discarder): `artifacts: []`, downloads 404.
    DiscardArtifacts {
        /// Job full name.
        job: String,
        /// Build number.
        number: u64,
    },
    /// Add a user.
    AddUser {
        /// The user.
        user: UserSpec,
    },
    /// Give a user one more valid token.
    AddToken {
        /// User id.
        user: String,
        /// Token.
        token: String,
    },
    /// Revoke one token.
    RevokeToken {
        /// User id.
        user: String,
        /// Token.
        token: String,
    },
    /// Revoke all of a user's tokens and issue a new one. Answers `{"token"}`.
    RotateToken {
        /// User id.
        user: String,
    },
    /// Grant or remove a user's Overall/Read.
    SetOverallRead {
        /// User id.
        user: String,
        /// Whether the user may read.
        enabled: bool,
    },
    /// Anonymous Overall/Read on or off.
    SetAnonymousRead {
        /// On or off.
        enabled: bool,
    },
    /// Restrict who may read an item (see [`ItemSpec::visible_to`]).
    SetVisibleTo {
        /// Item full name.
        path: String,
        /// Allowed users; `None` = everyone.
        users: Option<Vec<String>>,
    },
    /// Install a fault. Answers `{"id"}`.
    AddFault {
        /// The fault.
        fault: Fault,
    },
    /// Remove one fault.
    RemoveFault {
        /// Its id.
        id: u64,
    },
    /// Remove all faults.
    ClearFaults,
    /// Install a build notice endpoint. Answers `{"id"}`.
    AddNotifier {
        /// The endpoint.
        notifier: Notifier,
    },
    /// Remove one notice endpoint.
    RemoveNotifier {
        /// Its id.
        id: u64,
    },
    /// Remove all notice endpoints.
    ClearNotifiers,
    /// Forget the notice log.
    ClearNotices,
    /// Answer 503 "Jenkins is getting ready to work" to everything for `ms` milliseconds.
    SetRestarting {
        /// Duration.
        ms: u64,
    },
    /// Change the configured root URL (`None`: the listen address).
    SetRootUrl {
        /// New root URL.
        url: Option<String>,
    },
    /// Change how artifact downloads are answered.
    SetRedirectMode {
        /// Mode.
        mode: RedirectMode,
    },
    /// Forget logged requests.
    ClearRequests,
}

pub(crate) fn apply(sh: &Shared, cmd: Command) -> Result<Value, SimError> {
    match cmd {
        Command::AddFault { fault } => {
            let id = sh
                .faults
                .lock()
                .unwrap()
                .add(fault)
                .map_err(SimError::Invalid)?;
            return Ok(json!({ "id": id }));
        }
        Command::RemoveFault { id } => {
            let mut f = sh.faults.lock().unwrap();
            let before = f.faults.len();
            f.faults.retain(|x| x.id != id);
            if f.faults.len() == before {
                return Err(SimError::NotFound(format!("fault {id}")));
            }
            return Ok(json!({}));
        }
        Command::ClearFaults => {
            sh.faults.lock().unwrap().faults.clear();
            return Ok(json!({}));
        }
        Command::SetRestarting { ms } => {
            *sh.restart_until.lock().unwrap() = Some(Instant::now() + Duration::from_millis(ms));
            return Ok(json!({}));
        }
        Command::ClearRequests => {
            sh.log.lock().unwrap().clear();
            return Ok(json!({}));
        }
        Command::AddNotifier { notifier } => {
            let id = sh
                .notifiers
                .lock()
                .unwrap()
                .add(notifier)
                .map_err(SimError::Invalid)?;
            return Ok(json!({ "id": id }));
        }
        Command::RemoveNotifier { id } => {
            if !sh.notifiers.lock().unwrap().remove(id) {
                return Err(SimError::NotFound(format!("notifier {id}")));
            }
            return Ok(json!({}));
        }
        Command::ClearNotifiers => {
            sh.notifiers.lock().unwrap().clear();
            return Ok(json!({}));
        }
        Command::ClearNotices => {
            sh.notices.lock().unwrap().clear();
            return Ok(json!({}));
        }
        // Builds start and finish on their own timeline: the model lock is taken and released
        // around each notice.
        Command::AddBuild { job, build } => {
            return Ok(json!({ "number": notify::add_build(sh, &job, build)? }));
        }
        Command::FinishBuild {
            job,
            number,
            result,
            duration_ms,
        } => {
            notify::finish_build(sh, &job, number, result, duration_ms)?;
            return Ok(json!({}));
        }
        _ => {}
    }
    let mut m = sh.model.write().unwrap();
    let out = match cmd {
        Command::AddItem { parent, item } => json!({ "full_name": m.add_item(&parent, item)? }),
        Command::RemoveItem { path } => {
            m.remove_item(&path)?;
            json!({})
        }
        Command::AddArtifacts {
            job,
            number,
            artifacts,
        } => {
            m.add_artifacts(&job, number, artifacts)?;
            json!({})
        }
        Command::SetResult {
            job,
            number,
            result,
        } => {
            m.set_result(&job, number, result)?;
            json!({})
        }
        Command::DeleteBuild { job, number } => {
            m.delete_build(&job, number)?;
            json!({})
        }
        Command::DiscardArtifacts { job, number } => {
            m.discard_artifacts(&job, number)?;
            json!({})
        }
        Command::AddUser { user } => {
            m.add_user(user)?;
            json!({})
        }
        Command::AddToken { user, token } => {
            m.user_mut(&user)?.tokens.push(token);
            json!({})
        }
        Command::RevokeToken { user, token } => {
            let u = m.user_mut(&user)?;
            let before = u.tokens.len();
            u.tokens.retain(|t| *t != token);
            if u.tokens.len() == before {
                return Err(SimError::NotFound(format!("token of {user}")));
            }
            json!({})
        }
        Command::RotateToken { user } => {
            let seed = m.secret ^ crate::model::now_ms() as u64 ^ m.generation;
            m.touch();
            let token = format!(
                "11{:016x}{:016x}",
                crate::content::word(seed, 0),
                crate::content::word(seed, 1)
            );
            let u = m.user_mut(&user)?;
            u.tokens = vec![token.clone()];
            json!({ "token": token })
        }
        Command::SetOverallRead { user, enabled } => {
            m.user_mut(&user)?.overall_read = enabled;
            json!({})
        }
        Command::SetAnonymousRead { enabled } => {
            m.anonymous_read = enabled;
            json!({})
        }
        Command::SetVisibleTo { path, users } => {
            m.set_visible_to(&path, users)?;
            json!({})
        }
        Command::SetRootUrl { url } => {
            m.root_url = url.map(|u| if u.ends_with('/') { u } else { format!("{u}/") });
            m.touch();
            json!({})
        }
        Command::SetRedirectMode { mode } => {
            m.redirect = mode;
            json!({})
        }
        Command::AddFault { .. }
        | Command::RemoveFault { .. }
        | Command::ClearFaults
        | Command::SetRestarting { .. }
        | Command::ClearRequests
        | Command::AddNotifier { .. }
        | Command::RemoveNotifier { .. }
        | Command::ClearNotifiers
        | Command::ClearNotices
        | Command::AddBuild { .. }
        | Command::FinishBuild { .. } => unreachable!("handled above"),
    };
    Ok(out)
}

fn json_reply(status: StatusCode, v: &Value) -> Response {
    let mut r = Response::new(Body::from(v.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// `/_sim/…` on the controller listener: never authenticated, faulted or logged.
///
/// * `POST /_sim/command` with a [`Command`] → 200 JSON result, or 400/404/409 `{"error"}`.
/// * `GET /_sim/requests` → the request log; `DELETE /_sim/requests` clears it.
/// * `GET /_sim/notices` → the notice log; `DELETE /_sim/notices` clears it.
/// * `GET /_sim/info` → `{"url","s3_url","resource_root_url","root_url"}`.
pub(crate) async fn control(sh: Arc<Shared>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    match (method, path.as_str()) {
        (Method::POST, "/_sim/command") => {
            let body = match axum::body::to_bytes(req.into_body(), 16 << 20).await {
                Ok(b) => b,
                Err(e) => {
                    return json_reply(StatusCode::BAD_REQUEST, &json!({"error": e.to_string()}));
                }
            };
            let cmd: Command = match serde_json::from_slice(&body) {
                Ok(c) => c,
                Err(e) => {
                    return json_reply(StatusCode::BAD_REQUEST, &json!({"error": e.to_string()}));
                }
            };
            // A command may wait for notice receivers: keep it off the server's worker threads.
            let sh2 = sh.clone();
            let applied = tokio::task::spawn_blocking(move || apply(&sh2, cmd))
                .await
                .unwrap_or_else(|e| Err(SimError::Invalid(format!("command panicked: {e}"))));
            match applied {
                Ok(v) => json_reply(StatusCode::OK, &v),
                Err(e) => {
                    let st = match e {
                        SimError::NotFound(_) => StatusCode::NOT_FOUND,
                        SimError::Exists(_) => StatusCode::CONFLICT,
                        SimError::Invalid(_) => StatusCode::BAD_REQUEST,
                    };
                    json_reply(st, &json!({"error": e.to_string()}))
                }
            }
        }
        (Method::GET, "/_sim/requests") => {
            let log = sh.log.lock().unwrap().clone();
            json_reply(
                StatusCode::OK,
                &serde_json::to_value(log).unwrap_or_default(),
            )
        }
        (Method::DELETE, "/_sim/requests") => {
            sh.log.lock().unwrap().clear();
            json_reply(StatusCode::OK, &json!({}))
        }
        (Method::GET, "/_sim/notices") => {
            let log = sh.notices.lock().unwrap().clone();
            json_reply(
                StatusCode::OK,
                &serde_json::to_value(log).unwrap_or_default(),
            )
        }
        (Method::DELETE, "/_sim/notices") => {
            sh.notices.lock().unwrap().clear();
            json_reply(StatusCode::OK, &json!({}))
        }
        (Method::GET, "/_sim/info") => {
            let root = sh.model.read().unwrap().root().to_string();
            json_reply(
                StatusCode::OK,
                &json!({"url": sh.main_url, "s3_url": sh.s3_url, "resource_root_url": sh.rr_url, "root_url": root}),
            )
        }
        _ => json_reply(
            StatusCode::NOT_FOUND,
            &json!({"error": "unknown control endpoint"}),
        ),
    }
}
