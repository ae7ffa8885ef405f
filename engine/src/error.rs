//! Typed errors. A user's mistake carries the service's own error name (`NoSuchKey`,
//! `ResourceNotFoundException` …) and a one-line hint; anything else says it is a bug.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is refused the way the AWS service would refuse it.
    #[error("{code}: {message}")]
    Service {
        code: &'static str,
        message: String,
        hint: Option<String>,
    },
    /// The workspace could not be read or written.
    #[error("cannot access {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Something Lakebook should never do: a bug.
    #[error("internal error (a bug in Lakebook, please report it): {0}")]
    Internal(String),
}

impl Error {
    /// A service error with the given AWS-style name.
    pub fn service(code: &'static str, message: impl Into<String>) -> Self {
        Error::Service { code, message: message.into(), hint: None }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// Adds (or replaces) the one-line fix hint of a service error.
    pub fn with_hint(self, hint: impl Into<String>) -> Self {
        match self {
            Error::Service { code, message, .. } => {
                Error::Service { code, message, hint: Some(hint.into()) }
            }
            other => other,
        }
    }

    /// The error's name as a user sees it (the Jupyter `ename`).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Service { code, .. } => code,
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull => DISK_FULL,
            Error::Io { .. } => "WorkspaceIOError",
            Error::Internal(_) => "InternalError",
        }
    }

    /// The message without the name (the Jupyter `evalue`).
    pub fn message(&self) -> String {
        match self {
            Error::Service { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    pub fn hint(&self) -> Option<&str> {
        match self {
            Error::Service { hint, .. } => hint.as_deref(),
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull => Some(DISK_FULL_HINT),
            _ => None,
        }
    }
}

/// The closest name within edit distance 2, for "did you mean …?" hints.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (row[j + 1] + 1).min(row[j] + 1).min(prev + usize::from(ca != *cb));
                prev = cur;
            }
        }
        row[b.len()]
    }
    candidates.iter().map(|c| (distance(word, c), *c)).filter(|(d, _)| *d <= 2).min_by_key(|(d, _)| *d).map(|(_, c)| c)
}

/// Builds an [`Error::Service`] with a formatted message: `service_err!(NoSuchKey, "…{}", k)`.
#[macro_export]
macro_rules! service_err {
    ($code:ident, $($arg:tt)*) => {
        $crate::error::Error::service(stringify!($code), format!($($arg)*))
    };
}

/// Builds an [`Error::Internal`] with a formatted message.
#[macro_export]
macro_rules! internal_err {
    ($($arg:tt)*) => {
        $crate::error::Error::Internal(format!($($arg)*))
    };
}

/// The name of the error a full disk gives: the write was refused and nothing acknowledged
/// before it is lost.
pub const DISK_FULL: &str = "WorkspaceDiskFull";
const DISK_FULL_HINT: &str = "the disk holding the workspace is full: free space on it (or set LAKEBOOK_HOME to a workspace on a larger one) and run the cell again; what was acknowledged before is kept";

/// Whether an error, or one it was caused by, is "no space left on device".
pub fn is_disk_full(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull) {
            return true;
        }
        cause = e.source();
    }
    false
}

impl From<object_store::Error> for Error {
    fn from(err: object_store::Error) -> Self {
        match err {
            object_store::Error::NotFound { path, .. } => {
                Error::service("NoSuchKey", format!("the object {path} does not exist"))
            }
            other if is_disk_full(&other) => Error::service(DISK_FULL, format!("no space left on the workspace's disk: {other}")).with_hint(DISK_FULL_HINT),
            other => Error::Internal(format!("object store: {other}")),
        }
    }
}
