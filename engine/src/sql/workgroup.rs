//! Athena workgroups: where a query's results go and how much one query may scan
//! (BytesScannedCutoffPerQuery, at least 10 MB as in Athena). `primary` always exists.
//! Persisted in `<workspace>/sql/workgroups.json`.

use std::path::PathBuf;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Result, closest};
use crate::lake::{Lake, S3Uri};
use crate::service_err;
use crate::workspace::{Workspace, read_json, write_json};

pub const PRIMARY: &str = "primary";
/// Athena's smallest per-query data usage control.
pub const MIN_CUTOFF: u64 = 10 * 1_000_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workgroup {
    pub name: String,
    /// `s3://bucket/prefix/` that receives `<id>.csv` and `<id>.csv.metadata`.
    pub output_location: String,
    /// Queries that scan more than this are cancelled.
    pub bytes_scanned_cutoff: Option<u64>,
    pub description: String,
    pub created: DateTime<Utc>,
}

#[derive(Debug)]
pub(super) struct Workgroups {
    path: PathBuf,
    groups: Mutex<Vec<Workgroup>>,
}

impl Workgroups {
    pub(super) fn open(workspace: &Workspace) -> Result<Self> {
        let path = workspace.dir("sql")?.join("workgroups.json");
        let groups = read_json(&path)?.unwrap_or_default();
        Ok(Self { path, groups: Mutex::new(groups) })
    }

    fn primary() -> Workgroup {
        Workgroup {
            name: PRIMARY.into(),
            output_location: format!("s3://{}/", super::RESULTS_BUCKET),
            bytes_scanned_cutoff: None,
            description: "the default workgroup".into(),
            created: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    /// Every workgroup, `primary` first (≙ ListWorkGroups).
    pub(super) fn list(&self) -> Vec<Workgroup> {
        let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let mut all = vec![groups.iter().find(|g| g.name == PRIMARY).cloned().unwrap_or_else(Self::primary)];
        all.extend(groups.iter().filter(|g| g.name != PRIMARY).cloned());
        all
    }

    /// ≙ GetWorkGroup.
    pub(super) fn get(&self, name: &str) -> Result<Workgroup> {
        let all = self.list();
        if let Some(g) = all.iter().find(|g| g.name == name) {
            return Ok(g.clone());
        }
        let names: Vec<&str> = all.iter().map(|g| g.name.as_str()).collect();
        let mut err = service_err!(InvalidRequestException, "WorkGroup {name} is not found.");
        if let Some(c) = closest(name, &names) {
            err = err.with_hint(format!("did you mean {c}?"));
        } else {
            err = err.with_hint("`%sql workgroup create NAME` makes one; `%sql workgroup list` lists them");
        }
        Err(err)
    }

    /// ≙ CreateWorkGroup.
    pub(super) fn create(
        &self,
        lake: &Lake,
        name: &str,
        output_location: Option<&str>,
        cutoff: Option<u64>,
        description: &str,
        now: DateTime<Utc>,
    ) -> Result<Workgroup> {
        let valid = !name.is_empty() && name.len() <= 128 && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !valid {
            return Err(service_err!(InvalidRequestException, "{name:?} is not a valid workgroup name")
                .with_hint("1–128 characters: letters, digits, '.', '_' and '-'"));
        }
        if let Some(bytes) = cutoff.filter(|b| *b < MIN_CUTOFF) {
            return Err(service_err!(
                InvalidRequestException,
                "BytesScannedCutoffPerQuery is {bytes} bytes; the smallest allowed is 10 MB ({MIN_CUTOFF} bytes)"
            ));
        }
        let output_location = match output_location {
            Some(location) => {
                let uri = S3Uri::parse(location)?.folder();
                if !lake.list_buckets()?.iter().any(|b| b.name == uri.bucket) {
                    return Err(service_err!(NoSuchBucket, "the output location's bucket {} does not exist", uri.bucket)
                        .with_hint(format!("%lake mb s3://{}", uri.bucket)));
                }
                uri.to_string()
            }
            None => format!("s3://{}/{name}/", super::RESULTS_BUCKET),
        };
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        if name == PRIMARY || groups.iter().any(|g| g.name == name) {
            return Err(service_err!(InvalidRequestException, "WorkGroup {name} is already created"));
        }
        let group = Workgroup { name: name.into(), output_location, bytes_scanned_cutoff: cutoff, description: description.into(), created: now };
        groups.push(group.clone());
        write_json(&self.path, &*groups)?;
        Ok(group)
    }

    /// ≙ DeleteWorkGroup (`primary` cannot be deleted).
    pub(super) fn delete(&self, name: &str) -> Result<()> {
        if name == PRIMARY {
            return Err(service_err!(InvalidRequestException, "the primary workgroup cannot be deleted"));
        }
        self.get(name)?;
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        groups.retain(|g| g.name != name);
        write_json(&self.path, &*groups)
    }
}
