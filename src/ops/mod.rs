//! Operations: what people running jam look at. [`http`] serves `/metrics`, `/healthz` and `/readyz`,
//! and [`notify`] the build notices Jenkins sends; [`telemetry`] sets up the logs; [`doctor`] checks a
//! set-up end to end.

pub mod doctor;
pub mod http;
pub mod notify;
pub mod telemetry;

pub use http::{BindError, Check, Readiness, bind, serve, serve_with};
pub use notify::NoticeEndpoint;
