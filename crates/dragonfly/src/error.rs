//! error: what can go wrong talking to Dragonfly, and whether retrying makes sense.

use redis::{ErrorKind, RedisError, ServerErrorKind};

/// An error of the shared counters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Dragonfly cannot be reached, timed out or is not ready; retrying may help. A write that
    /// failed this way may or may not have been applied.
    #[error("dragonfly unavailable: {0}")]
    Unavailable(String),
    /// Dragonfly answered something this crate does not expect (a script error, a wrong type in a
    /// hash, an odd reply): a bug or a damaged key, not worth retrying.
    #[error("unexpected reply from dragonfly: {0}")]
    Protocol(String),
    /// The caller passed something unusable (a bad URL or prefix, a negative amount).
    #[error("invalid argument: {0}")]
    Invalid(String),
}

impl Error {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}

impl From<RedisError> for Error {
    fn from(e: RedisError) -> Error {
        let unavailable = e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_cluster_error()
            || matches!(
                e.kind(),
                ErrorKind::AuthenticationFailed
                    | ErrorKind::ClusterConnectionNotFound
                    | ErrorKind::Server(
                        ServerErrorKind::BusyLoading
                            | ServerErrorKind::TryAgain
                            | ServerErrorKind::MasterDown
                            | ServerErrorKind::ClusterDown
                            | ServerErrorKind::ReadOnly
                    )
            );
        if unavailable {
            Error::Unavailable(e.to_string())
        } else if e.kind() == ErrorKind::InvalidClientConfig {
            Error::Invalid(e.to_string())
        } else {
            Error::Protocol(e.to_string())
        }
    }
}
