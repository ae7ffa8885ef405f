//! The lake's vocabulary: `s3://` URIs with S3's naming rules, objects, buckets, listings.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::service_err;

/// A parsed `s3://bucket/key` (the key may be empty or a prefix).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct S3Uri {
    pub bucket: String,
    pub key: String,
}

impl S3Uri {
    /// Parses `s3://bucket[/key]`, checking the bucket name (legacy names too) and the key's
    /// safety.
    pub fn parse(text: &str) -> Result<Self> {
        let rest = text.strip_prefix("s3://").ok_or_else(|| {
            service_err!(InvalidArgument, "{text:?} is not an s3:// URI")
                .with_hint("write lake locations as s3://bucket/key")
        })?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        validate_legacy_bucket_name(bucket)?;
        validate_key(key, true)?;
        Ok(Self { bucket: bucket.to_string(), key: key.to_string() })
    }

    /// A URI that must name one object, not a bucket or a folder.
    pub fn parse_object(text: &str) -> Result<Self> {
        let uri = Self::parse(text)?;
        if uri.key.is_empty() || uri.key.ends_with('/') {
            return Err(service_err!(InvalidObjectName, "{text} names a bucket or folder, not an object")
                .with_hint("give the full key, e.g. s3://bucket/folder/file.csv"));
        }
        Ok(uri)
    }

    /// The same location as a folder: the key ends with `/` (a bucket stays a bucket).
    pub fn folder(mut self) -> Self {
        if !self.key.is_empty() && !self.key.ends_with('/') {
            self.key.push('/');
        }
        self
    }

    pub fn join(&self, suffix: &str) -> Self {
        let key = if self.key.is_empty() || self.key.ends_with('/') {
            format!("{}{suffix}", self.key)
        } else {
            format!("{}/{suffix}", self.key)
        };
        Self { bucket: self.bucket.clone(), key }
    }

    /// The last segment of the key (the object's file name).
    pub fn file_name(&self) -> &str {
        self.key.trim_end_matches('/').rsplit('/').next().unwrap_or("")
    }
}

impl std::fmt::Display for S3Uri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// The rules S3 applies to a new bucket's name since March 2018: 3-63 lowercase letters,
/// digits, '.' or '-', starting and ending with a letter or digit.
pub fn validate_bucket_name(name: &str) -> Result<()> {
    let ok_chars = name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let ends_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if (3..=63).contains(&name.len())
        && ok_chars
        && ends_ok(name.bytes().next())
        && ends_ok(name.bytes().last())
        && !name.contains("..")
    {
        return Ok(());
    }
    let mut err = service_err!(InvalidBucketName, "{name:?} is not a valid bucket name")
        .with_hint("bucket names are 3-63 lowercase letters, digits, '.' or '-', starting and ending with a letter or digit");
    if validate_legacy_bucket_name(name).is_ok() {
        err = err.with_hint(
            "S3 has refused upper case and '_' in new bucket names since March 2018; buckets made before keep them (us-east-1): \
             make one the old way with `%lake mb s3://NAME --legacy-name`",
        );
    }
    Err(err)
}

/// The rules of us-east-1's buckets made before March 2018, which every reference to a
/// bucket accepts (the AWS guides still use such names, e.g. `my_athena_results`): 3-255
/// letters of either case, digits, '.', '-' or '_', never "..".
pub fn validate_legacy_bucket_name(name: &str) -> Result<()> {
    let ok_chars = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
    if (3..=255).contains(&name.len()) && ok_chars && !name.contains("..") && name.bytes().any(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(service_err!(InvalidBucketName, "{name:?} is not a valid bucket name")
            .with_hint("bucket names are 3-63 lowercase letters, digits, '.' or '-', starting and ending with a letter or digit"))
    }
}

/// Keys stay inside their bucket: no `..` or `.` segments, no absolute paths, no empty
/// segments, no control characters, at most 1,024 bytes. A trailing `/` (a folder) is allowed
/// when `allow_prefix`.
pub fn validate_key(key: &str, allow_prefix: bool) -> Result<()> {
    let invalid = |why: &str| {
        Err(service_err!(InvalidObjectName, "the key {key:?} {why}")
            .with_hint("keys are relative paths inside the bucket, like folder/file.csv"))
    };
    if key.is_empty() {
        return Ok(());
    }
    if key.len() > 1024 {
        return invalid("is longer than 1,024 bytes");
    }
    if key.starts_with('/') {
        return invalid("is absolute");
    }
    if key.chars().any(|c| c.is_control() || c == '\\') {
        return invalid("contains a control character or backslash");
    }
    let body = if allow_prefix { key.strip_suffix('/').unwrap_or(key) } else { key };
    for segment in body.split('/') {
        match segment {
            ".." | "." => return invalid("would escape the bucket"),
            "" => return invalid("has an empty path segment"),
            s if s.starts_with(".tmp-") || s.contains('#') => {
                return invalid("uses a name reserved for in-progress writes ('.tmp-' prefix or '#')");
            }
            _ => {}
        }
    }
    Ok(())
}

/// One object's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
}

/// One bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketInfo {
    pub name: String,
    pub created: DateTime<Utc>,
}

/// The answer of a listing: objects, and with a delimiter the "folders" under the prefix.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub objects: Vec<ObjectInfo>,
    /// Common prefixes (folders), each ending in `/`, relative to the bucket.
    pub prefixes: Vec<String>,
}

/// What `%lake info` reports.
#[derive(Debug, Clone)]
pub struct LakeInfo {
    pub workspace: std::path::PathBuf,
    /// The lake's folder, or its S3 URL (with endpoint and region when given).
    pub location: String,
    /// Where the S3 setting came from; None for the local lake.
    pub remote: Option<super::SettingSource>,
    pub buckets: usize,
    pub objects: u64,
    pub bytes: u64,
}

/// Whether `create_bucket` made a new bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketCreated {
    Created,
    AlreadyOwnedByYou,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_uris_and_rejects_escapes() {
        let uri = S3Uri::parse("s3://demo/web/a.csv").unwrap();
        assert_eq!((uri.bucket.as_str(), uri.key.as_str()), ("demo", "web/a.csv"));
        assert_eq!(S3Uri::parse("s3://demo").unwrap().key, "");
        assert_eq!(S3Uri::parse("s3://demo/web/").unwrap().key, "web/");
        for bad in ["s3://demo/../etc/passwd", "s3://demo//abs", "s3://demo/a/./b", "s3://demo/a//b"] {
            assert_eq!(S3Uri::parse(bad).unwrap_err().code(), "InvalidObjectName", "{bad}");
        }
        for bad in ["s3://De", "s3://a..b", "s3://ab", "s3://a$b"] {
            assert_eq!(S3Uri::parse(bad).unwrap_err().code(), "InvalidBucketName", "{bad}");
        }
        // us-east-1's buckets made before March 2018 keep upper case and '_': references take
        // them; a new bucket must follow today's rules unless made the legacy way.
        assert_eq!(S3Uri::parse("s3://my_athena_results/x/").unwrap().bucket, "my_athena_results");
        for bad in ["-abc", "my_athena_results", "Upper"] {
            let err = validate_bucket_name(bad).unwrap_err();
            assert_eq!(err.code(), "InvalidBucketName", "{bad}");
        }
        assert!(validate_bucket_name("my_athena_results").unwrap_err().hint().is_some_and(|h| h.contains("--legacy-name")));
        assert!(validate_legacy_bucket_name("my_athena_results").is_ok());
        assert_eq!(S3Uri::parse("/tmp/x").unwrap_err().code(), "InvalidArgument");
        assert_eq!(S3Uri::parse_object("s3://demo/web/").unwrap_err().code(), "InvalidObjectName");
    }
}
