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
        if let Some(err) = s3_error(&err) {
            return err;
        }
        match err {
            object_store::Error::NotFound { path, .. } => {
                Error::service("NoSuchKey", format!("the object {path} does not exist"))
            }
            other if is_disk_full(&other) => Error::service(DISK_FULL, format!("no space left on the workspace's disk: {other}")).with_hint(DISK_FULL_HINT),
            other => Error::Internal(format!("object store: {other}")),
        }
    }
}

/// A service's error name as a `&'static str`: each distinct name a store sends is kept once.
fn intern(code: &str) -> &'static str {
    static NAMES: std::sync::Mutex<std::collections::BTreeSet<&'static str>> = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut names = NAMES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(name) = names.get(code) {
        return name;
    }
    let name: &'static str = Box::leak(code.to_string().into_boxed_str());
    names.insert(name);
    name
}

/// A failed request to an S3-compatible store, named as S3 names it: the `<Code>` of its
/// error document (`NoSuchBucket`, `AccessDenied`, `SlowDown` …), or botocore's
/// `EndpointConnectionError` when the store could not be reached (after the retries).
fn s3_error(err: &object_store::Error) -> Option<Error> {
    let (object_store::Error::Generic { store: "S3", .. }
    | object_store::Error::NotFound { .. }
    | object_store::Error::PermissionDenied { .. }
    | object_store::Error::Unauthenticated { .. }
    | object_store::Error::Precondition { .. }
    | object_store::Error::AlreadyExists { .. }) = err
    else {
        return None;
    };
    let mut text = String::new();
    let mut connect = None;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        text.push_str(&e.to_string());
        text.push('\n');
        if let Some(http) = e.downcast_ref::<object_store::client::HttpError>() {
            connect = Some(http.kind());
        }
        cause = e.source();
    }
    let code = text.split("<Code>").nth(1).and_then(|rest| rest.split("</Code>").next());
    let message = text.split("<Message>").nth(1).and_then(|rest| rest.split("</Message>").next());
    let first_line = text.lines().next().unwrap_or_default().to_string();
    match (code, connect) {
        (Some("NoSuchKey"), _) => None,
        (Some(code), _) if !code.is_empty() && code.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            let mut error = Error::service(intern(code), message.map_or(first_line, str::to_string));
            if matches!(code, "AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken") {
                error = error.with_hint("the lake's S3 credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, else the AWS_PROFILE profile of ~/.aws/credentials");
            }
            Some(error)
        }
        (_, Some(object_store::client::HttpErrorKind::Connect | object_store::client::HttpErrorKind::Timeout)) => Some(
            Error::service("EndpointConnectionError", format!("could not reach the lake's S3 endpoint: {first_line}"))
                .with_hint("the request was retried with backoff; check the endpoint (`%lake info`) and the network, then run the cell again"),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(body: &str) -> object_store::Error {
        object_store::Error::Generic { store: "S3", source: Box::new(std::io::Error::other(format!("Server returned non-2xx status code: 403 Forbidden: {body}"))) }
    }

    #[test]
    fn s3_errors_carry_the_name_of_s3s_error_document() {
        let denied: Error = s3("<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>").into();
        assert_eq!((denied.code(), denied.message().as_str()), ("AccessDenied", "Access Denied"));
        assert!(denied.hint().is_some_and(|h| h.contains("AWS_ACCESS_KEY_ID")));
        let slow: Error = s3("<Error><Code>SlowDown</Code></Error>").into();
        assert_eq!(slow.code(), "SlowDown");
        assert!(std::ptr::eq(intern("SlowDown"), slow.code()), "a name is kept once");
        // no error document: a bug report, not a guessed name; a missing key stays NoSuchKey
        assert_eq!(Error::from(s3("oops")).code(), "InternalError");
        let missing: Error = object_store::Error::NotFound { path: "b/k".into(), source: Box::new(std::io::Error::other("<Code>NoSuchKey</Code>")) }.into();
        assert_eq!(missing.code(), "NoSuchKey");
        let no_bucket: Error = object_store::Error::NotFound { path: "b/k".into(), source: Box::new(std::io::Error::other("<Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message>")) }.into();
        assert_eq!(no_bucket.code(), "NoSuchBucket");
    }
}
