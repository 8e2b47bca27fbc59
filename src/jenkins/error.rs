//! The errors of the Jenkins client, classified so the caller can act on them. Messages name the
//! controller URL and what to do; they never contain the token.

/// An error talking to a Jenkins controller. Messages name the controller URL and what to do; they never
/// contain the token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JenkinsError {
    /// 401: the credentials were refused.
    #[error(
        "Jenkins at {url} refused the credentials of user '{user}' (401): the API token is wrong, expired or revoked; \
         create a new token (user menu > Security > API Token) and update the token file or JENKINS_API_TOKEN"
    )]
    Unauthorized {
        /// Controller base URL.
        url: String,
        /// User name.
        user: String,
    },
    /// 403: authenticated but not allowed.
    #[error(
        "Jenkins denied access to {url} (403, authenticated as '{who}'): grant the user Overall/Read and Job/Read"
    )]
    Forbidden {
        /// The URL.
        url: String,
        /// `X-You-Are-Authenticated-As`.
        who: String,
    },
    /// 404: no such job, build or artifact (or not visible to the user).
    #[error(
        "not found on Jenkins: {url} (404; the job, build or artifact does not exist or the user cannot see it)"
    )]
    NotFound {
        /// The URL.
        url: String,
    },
    /// Any other HTTP status, after retries where they apply.
    #[error("Jenkins answered {status} for {url}{}", retried(*.attempts))]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
        /// Attempts made.
        attempts: u32,
    },
    /// The connection failed or timed out, after retries.
    #[error("cannot reach Jenkins at {url}{}: {message}", retried(*.attempts))]
    Transport {
        /// The URL.
        url: String,
        /// What happened (reqwest's description, without the token).
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The response was not the JSON jam asked for.
    #[error("unexpected answer from {url}: {message}")]
    BadResponse {
        /// The URL.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// The client could not be built (bad CA bundle, …).
    #[error("Jenkins client for {url}: {message}")]
    Setup {
        /// Controller base URL.
        url: String,
        /// What is wrong.
        message: String,
    },
}

fn retried(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    }
}

impl JenkinsError {
    /// Whether the thing asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, JenkinsError::NotFound { .. })
    }

    /// Whether the error is about the credentials (and retrying will not help).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, JenkinsError::Unauthorized { .. })
    }
}
