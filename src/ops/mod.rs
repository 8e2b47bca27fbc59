//! Operations: what people running jam look at. [`http`] serves `/metrics`, `/healthz` and `/readyz`;
//! [`telemetry`] sets up the logs; [`doctor`] checks a set-up end to end.

pub mod doctor;
pub mod http;
pub mod telemetry;

pub use http::{BindError, Check, Readiness, bind, serve};
