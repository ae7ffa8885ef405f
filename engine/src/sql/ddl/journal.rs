//! CTAS and INSERT INTO made whole or not at all. Before a write stages its files (under
//! `<folder>/_lakebook_staging/<execution>/`, which scans skip) it notes where, in
//! `<workspace>/sql/writes/<execution>.json`; once every file is staged it replaces the note
//! with the commit (the moves, the table to create, the partitions to add), carries it out and
//! removes the note. The commit note is the decision: opening the engine finishes a noted
//! commit (a move already made is skipped) and removes the staged files of a write noted only
//! as staging, so a killed kernel leaves each write done or never begun.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::run::{STAGING, StagedWrite};
use crate::error::{Error, Result};
use crate::lake::S3Uri;
use crate::workspace::{read_json, write_json};

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum Note {
    Staging { locations: Vec<String> },
    Commit { write: StagedWrite },
}

impl crate::sql::SqlEngine {
    fn writes_dir(&self) -> PathBuf {
        self.path.with_file_name("writes")
    }

    fn note_path(&self, execution: &str) -> PathBuf {
        self.writes_dir().join(format!("{execution}.json"))
    }

    /// Notes the folders a write is about to stage files under.
    pub(super) fn note_staging(&self, execution: &str, locations: Vec<String>) -> Result<()> {
        write_json(&self.note_path(execution), &Note::Staging { locations })
    }

    /// Decides a staged write (its note becomes the commit), carries it out, forgets it.
    pub(super) fn commit_noted(&self, execution: &str, write: StagedWrite) -> Result<()> {
        let path = self.note_path(execution);
        write_json(&path, &Note::Commit { write: write.clone() })?;
        self.commit_target(&write)?;
        std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))
    }

    /// Forgets a write that failed before its commit, removing what it staged.
    pub(super) fn abandon_noted(&self, execution: &str, locations: &[String]) -> Result<()> {
        self.remove_staged(execution, locations)?;
        let path = self.note_path(execution);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&path, e)),
            _ => Ok(()),
        }
    }

    fn remove_staged(&self, execution: &str, locations: &[String]) -> Result<()> {
        for location in locations {
            self.lake.delete_marked(&S3Uri::parse(location)?, &format!("{STAGING}/{execution}"))?;
        }
        Ok(())
    }

    /// At open: every write a killed kernel left noted is finished (committed) or undone
    /// (staged only).
    pub(crate) fn recover_writes(&self) -> Result<()> {
        let dir = self.writes_dir();
        let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(()) };
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(execution) = path.file_stem().and_then(|s| s.to_str()).map(str::to_string) else { continue };
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match read_json::<Note>(&path)? {
                Some(Note::Commit { write }) => self.commit_target(&write)?,
                Some(Note::Staging { locations }) => self.remove_staged(&execution, &locations)?,
                None => {}
            }
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
        Ok(())
    }
}
