//! Cluster snapshots: manual and automated ones (their schedule in `run_due`), deleting them
//! and restoring a cluster from one.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::model::{AUTOMATED_CHANGE_BYTES_PER_NODE, AUTOMATED_INTERVAL_HOURS, Cluster, Snapshot, SnapshotType, State};
use super::parse::validate_identifier;
use super::{Redshift, find};
use crate::error::{Result, closest};
use crate::service_err;

impl Redshift {
    pub(super) fn snapshot_dir(&self, id: &str) -> PathBuf {
        self.dir.join("snapshots").join(id)
    }

    /// ≙ CreateClusterSnapshot: a manual snapshot, kept until deleted.
    pub fn create_snapshot(&self, cluster: &str, id: &str) -> Result<Snapshot> {
        validate_identifier("snapshot", id)?;
        if self.lock().snapshots.iter().any(|s| s.id == id) {
            return Err(service_err!(ClusterSnapshotAlreadyExists, "snapshot {id} already exists"));
        }
        let c = self.describe(cluster)?;
        self.take_snapshot(&c, id, SnapshotType::Manual, self.clock.now(), None)
    }

    /// Links the cluster's table files into the snapshot's directory and records it.
    fn take_snapshot(&self, c: &Cluster, id: &str, snapshot_type: SnapshotType, at: DateTime<Utc>, expires: Option<DateTime<Utc>>) -> Result<Snapshot> {
        let target = self.snapshot_dir(id);
        if target.exists() {
            std::fs::remove_dir_all(&target).map_err(|e| crate::Error::io(&target, e))?;
        }
        for t in &c.tables {
            let version = format!("v{}", t.version);
            link_dir(&self.table_dir(&c.name, t).join(&version), &target.join(format!("{}.{}", t.schema, t.name)).join(&version))?;
        }
        let snapshot = Snapshot {
            id: id.to_string(),
            cluster: c.name.clone(),
            snapshot_type,
            created: at,
            expires,
            bytes: c.tables.iter().map(|t| t.bytes).sum(),
            state: c.clone(),
        };
        let recorded = snapshot.clone();
        self.mutate(|state| {
            state.snapshots.push(recorded);
            Ok(())
        })?;
        Ok(snapshot)
    }

    /// ≙ DescribeClusterSnapshots, oldest first; of one cluster when named.
    pub fn snapshots(&self, cluster: Option<&str>) -> Vec<Snapshot> {
        self.lock().snapshots.iter().filter(|s| cluster.is_none_or(|c| s.cluster == c)).cloned().collect()
    }

    /// ≙ DeleteClusterSnapshot (manual snapshots; automated ones expire).
    pub fn delete_snapshot(&self, id: &str) -> Result<Snapshot> {
        let removed = self.mutate(|state| {
            let i = find_snapshot(state, id)?;
            if state.snapshots[i].snapshot_type == SnapshotType::Automated {
                return Err(service_err!(InvalidClusterSnapshotState, "{id} is an automated snapshot: it is deleted when its retention period ends"));
            }
            Ok(state.snapshots.remove(i))
        })?;
        let _ = std::fs::remove_dir_all(self.snapshot_dir(id));
        Ok(removed)
    }

    /// ≙ RestoreFromClusterSnapshot: a new cluster with the snapshot's tables.
    pub fn restore(&self, id: &str, cluster: &str) -> Result<Cluster> {
        validate_identifier("cluster", cluster)?;
        let snapshot = {
            let state = self.lock();
            if state.clusters.iter().any(|c| c.name == cluster) {
                return Err(service_err!(ClusterAlreadyExists, "cluster {cluster} already exists"));
            }
            state.snapshots[find_snapshot(&state, id)?].clone()
        };
        let now = self.clock.now();
        let mut restored = snapshot.state.clone();
        restored.name = cluster.to_string();
        restored.created = now;
        restored.last_automated = Some(now);
        restored.changed_bytes = 0;
        restored.load_errors.clear();
        restored.load_commits.clear();
        for t in &restored.tables {
            let version = format!("v{}", t.version);
            link_dir(&self.snapshot_dir(id).join(format!("{}.{}", t.schema, t.name)).join(&version), &self.table_dir(cluster, t).join(&version))?;
        }
        let created = restored.clone();
        self.mutate(|state| {
            state.clusters.push(restored);
            Ok(())
        })?;
        Ok(created)
    }

    /// Takes the automated snapshots that are due at `now` (each at the moment it was due)
    /// and deletes the expired ones; returns what it did.
    pub fn run_due(&self, now: DateTime<Utc>) -> Result<Vec<String>> {
        let mut reports = Vec::new();
        let clusters = self.clusters();
        for c in clusters.iter().filter(|c| c.automated_retention_days > 0) {
            let interval = chrono::Duration::hours(AUTOMATED_INTERVAL_HOURS);
            let mut last = c.last_automated.unwrap_or(c.created);
            let by_change = c.changed_bytes >= AUTOMATED_CHANGE_BYTES_PER_NODE * u64::from(c.nodes);
            let mut due = Vec::new();
            while last + interval <= now {
                last += interval;
                due.push(last);
            }
            if due.is_empty() && by_change {
                due.push(now);
            }
            // only the latest snapshot of a run of missed ones matters: the data is the same
            if let Some(at) = due.last().copied() {
                let id = format!("rs:{}-{}", c.name, at.format("%Y-%m-%d-%H-%M-%S"));
                let expires = at + chrono::Duration::days(i64::from(c.automated_retention_days));
                if expires > now {
                    let current = self.describe(&c.name)?;
                    self.take_snapshot(&current, &id, SnapshotType::Automated, at, Some(expires))?;
                    reports.push(format!("Redshift took automated snapshot {id} of {}", c.name));
                }
                self.mutate(|state| {
                    let i = find(state, &c.name)?;
                    state.clusters[i].last_automated = Some(at);
                    state.clusters[i].changed_bytes = 0;
                    Ok(())
                })?;
            }
        }
        let expired: Vec<Snapshot> = self.lock().snapshots.iter().filter(|s| s.expires.is_some_and(|e| e <= now)).cloned().collect();
        if !expired.is_empty() {
            self.mutate(|state| {
                state.snapshots.retain(|s| s.expires.is_none_or(|e| e > now));
                Ok(())
            })?;
            for s in expired {
                let _ = std::fs::remove_dir_all(self.snapshot_dir(&s.id));
                reports.push(format!("Redshift deleted automated snapshot {} (retention ended)", s.id));
            }
        }
        Ok(reports)
    }
}

fn find_snapshot(state: &State, id: &str) -> Result<usize> {
    state.snapshots.iter().position(|s| s.id == id).ok_or_else(|| {
        let ids: Vec<&str> = state.snapshots.iter().map(|s| s.id.as_str()).collect();
        let err = service_err!(ClusterSnapshotNotFound, "snapshot {id} not found");
        match closest(id, &ids) {
            Some(s) => err.with_hint(format!("did you mean {s}?")),
            None => err.with_hint("`%redshift snapshots` lists them"),
        }
    })
}

/// Hard-links every file of `from` into `to` (table versions are immutable), copying where
/// links are not possible.
fn link_dir(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| crate::Error::io(to, e))?;
    let entries = match std::fs::read_dir(from) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(crate::Error::io(from, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| crate::Error::io(from, e))?;
        let target = to.join(entry.file_name());
        if std::fs::hard_link(entry.path(), &target).is_err() {
            std::fs::copy(entry.path(), &target).map_err(|e| crate::Error::io(&target, e))?;
        }
    }
    Ok(())
}
