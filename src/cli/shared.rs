//! The configuration of the read-side commands (`fetch`, `ls`, `verify`, `prune`): loaded without needing
//! Jenkins credentials when only the store is read, with the source names the configuration knows.

use url::Url;

use crate::{
    config::{Config, Env, Overrides},
    error::Error,
};

/// The configuration for a command, and the configured controllers as (source name, base URL).
///
/// With `need_jenkins` false, a configuration whose Jenkins settings are incomplete (no token, say) still
/// loads: reading the store needs only the store settings and the source names
/// ([`Config::load_without_jenkins`]).
pub fn load(
    flags: &Overrides,
    env: &Env<'_>,
    need_jenkins: bool,
) -> crate::Result<(Config, Vec<(String, Url)>)> {
    let (cfg, sources) = if need_jenkins {
        let cfg = Config::load(flags, env)?;
        let sources = cfg.sources();
        (cfg, sources)
    } else {
        Config::load_without_jenkins(flags, env)?
    };
    crate::ops::telemetry::init(&cfg.log).map_err(Error::Usage)?;
    Ok((cfg, sources))
}
