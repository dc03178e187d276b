//! Why a config could not be loaded, at start-up or on a reload. Kept typed
//! until it is shown: `/config`'s `last_error`, `POST /reload`'s 400 body,
//! the log.
//!
//! Each message is whole, its causes included, as it is shown; `source` still
//! names the cause for a caller that inspects it.

use std::io;
use std::path::PathBuf;

use crate::backend::BackendError;
use crate::config::ConfigErrors;
use crate::tls::TlsError;

/// Why a reload (or the start-up load) changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The config file could not be read. Shown in the `path:line:column`
    /// form of [`ConfigErrors`], with no position.
    #[error(
        "{}: cannot read the file: {source}\n  help: restore the file; the current config keeps serving",
        path.display()
    )]
    Read { path: PathBuf, source: io::Error },
    /// The file is not a valid config.
    #[error("{0}")]
    Config(#[source] ConfigErrors),
    /// `[server.tls]`: the listener's certificate or key.
    #[error("server.tls: {0}")]
    Tls(#[source] TlsError),
    /// A backend's TLS settings (its `ca_file`).
    #[error("{0}")]
    Backend(#[source] BackendError),
    /// The task that builds the new snapshot panicked or was cancelled.
    #[error("reload task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}

impl From<ConfigErrors> for ReloadError {
    fn from(errors: ConfigErrors) -> ReloadError {
        ReloadError::Config(errors)
    }
}

impl From<BackendError> for ReloadError {
    fn from(error: BackendError) -> ReloadError {
        ReloadError::Backend(error)
    }
}

/// Why [`crate::app::start`] could not start a proxy.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener handed in has no local address.
    #[error("{0}")]
    Listener(#[source] io::Error),
    /// The config's TLS material or backends could not be loaded.
    #[error("{0}")]
    Load(#[source] ReloadError),
}

impl From<ReloadError> for StartError {
    fn from(error: ReloadError) -> StartError {
        StartError::Load(error)
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error;
    use std::path::Path;

    use super::*;

    #[test]
    fn a_read_error_reads_as_a_config_error_without_position() {
        let path = Path::new("/etc/strangler/strangler.toml");
        let denied = || io::Error::from(io::ErrorKind::PermissionDenied);
        let error = ReloadError::Read {
            path: path.to_owned(),
            source: denied(),
        };
        let as_config_error = ConfigErrors::whole_file(
            path,
            format!("cannot read the file: {}", denied()),
            "restore the file; the current config keeps serving",
        );
        assert_eq!(error.to_string(), as_config_error.to_string());
        assert!(error.source().is_some_and(|s| s.is::<io::Error>()));
    }

    #[test]
    fn a_server_certificate_error_names_the_section_and_keeps_its_cause() {
        let error = ReloadError::Tls(TlsError::ServerName("x y".into()));
        assert!(
            error
                .to_string()
                .starts_with("server.tls: tls_server_name ")
        );
        assert!(error.source().is_some_and(|s| s.is::<TlsError>()));
        let start = StartError::from(error);
        assert!(start.to_string().starts_with("server.tls: "));
        assert!(start.source().is_some_and(|s| s.is::<ReloadError>()));
    }
}
