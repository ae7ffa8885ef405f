//! The workspace directory: the one place all state lives, guarded by an exclusive lock so
//! two kernels never write the same files, and written only through atomic replace.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::service_err;

const LOCK_FILE: &str = ".lock";
/// The kernel's own folder (input history): kept by [`Workspace::clear`].
pub const KERNEL_DIR: &str = "kernel";

/// An open workspace. The lock is held for as long as this value lives.
#[derive(Debug)]
pub struct Workspace {
    root: PathBuf,
    _lock: File,
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let mut open = open_here();
        if let Some(i) = open.iter().position(|r| *r == self.root) {
            open.remove(i);
        }
    }
}

/// How long opening waits for the lock of a kernel that is no longer running.
const STALE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The workspaces this process holds open (by canonical path).
static OPEN_HERE: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn open_here() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    OPEN_HERE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether the lock file's holder (`process <pid> (started …)`) no longer holds the
/// workspace: it has exited, or it is this process and the workspace was closed here. The
/// lock can still be held for a moment then, by a child being forked (by the dead kernel, or
/// by another thread of this one) that has not yet reached exec, where the descriptor closes.
fn holder_is_gone(holder: &str, root: &Path) -> bool {
    let pid = holder.strip_prefix("process ").and_then(|rest| rest.split_whitespace().next()).and_then(|p| p.parse::<u32>().ok());
    pid.is_some_and(|pid| match pid == std::process::id() {
        true => !open_here().iter().any(|r| r == root),
        false => !Path::new(&format!("/proc/{pid}")).exists(),
    })
}

impl Workspace {
    /// Creates the directory if needed and takes its exclusive lock, or fails with
    /// `WorkspaceLocked` naming the process that holds it.
    pub fn open(root: PathBuf) -> Result<Self> {
        fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
        let root = root.canonicalize().map_err(|e| Error::io(&root, e))?;
        let lock_path = root.join(LOCK_FILE);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        let mut waited = std::time::Duration::ZERO;
        match loop {
            let mut holder = String::new();
            match lock.try_lock() {
                Err(fs::TryLockError::WouldBlock) => {
                    let _ = lock.read_to_string(&mut holder);
                    let _ = lock.rewind();
                    // A closed or killed holder's lock lingers while a child it (or another
                    // thread here) was forking is between fork and exec: wait for that, but
                    // not for a holder that still has the workspace open.
                    if holder_is_gone(&holder, &root) && waited < STALE_LOCK_WAIT {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        waited += std::time::Duration::from_millis(20);
                        continue;
                    }
                    break Err(fs::TryLockError::WouldBlock).map_err(|e| (e, holder));
                }
                other => break other.map_err(|e| (e, holder)),
            }
        } {
            Ok(()) => {}
            Err((fs::TryLockError::WouldBlock, holder)) => {
                let holder = holder.trim();
                let holder = if holder.is_empty() { "another process" } else { holder };
                return Err(service_err!(
                    WorkspaceLocked,
                    "the workspace {} is in use by {holder}",
                    root.display()
                )
                .with_hint(
                    "shut down the other notebook's kernel, or give this one its own workspace \
                     with LAKEBOOK_HOME",
                ));
            }
            Err((fs::TryLockError::Error(e), _)) => return Err(Error::io(&lock_path, e)),
        }
        let holder = format!("process {} (started {})", std::process::id(), chrono::Utc::now());
        lock.set_len(0).map_err(|e| Error::io(&lock_path, e))?;
        lock.write_all(holder.as_bytes()).map_err(|e| Error::io(&lock_path, e))?;
        open_here().push(root.clone());
        Ok(Self { root, _lock: lock })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Deletes everything in the workspace but its lock and the entries named in `keep`.
    pub fn clear(&self, keep: &[&str]) -> Result<()> {
        let entries = fs::read_dir(&self.root).map_err(|e| Error::io(&self.root, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&self.root, e))?;
            let name = entry.file_name();
            if name == LOCK_FILE || keep.iter().any(|k| name == *k) {
                continue;
            }
            let path = entry.path();
            let is_dir = entry.file_type().map_err(|e| Error::io(&path, e))?.is_dir();
            let removed = if is_dir { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
            removed.map_err(|e| Error::io(&path, e))?;
        }
        Ok(())
    }

    /// A directory of the workspace, created if missing (`service` is e.g. "lake", "streams").
    pub fn dir(&self, service: &str) -> Result<PathBuf> {
        let dir = self.root.join(service);
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(dir)
    }
}

/// The bytes of every file under `dir` (unreadable entries count as empty).
pub fn disk_usage(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => disk_usage(&entry.path()),
            Ok(_) => entry.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// Replaces `path` with `bytes` atomically: a reader sees the old or the new file, never a
/// torn one, even if the process dies mid-write.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write_with(path, |file| file.write_all(bytes))
}

/// [`atomic_write`] with the content written by `write` (a file too large to build in memory
/// first).
pub fn atomic_write_with(path: &Path, write: impl FnOnce(&mut File) -> std::io::Result<()>) -> Result<()> {
    let dir = path.parent().ok_or_else(|| crate::internal_err!("{} has no parent", path.display()))?;
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    write(tmp.as_file_mut()).map_err(|e| Error::io(tmp.path(), e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Reads a JSON state file; `None` when it does not exist yet.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            crate::internal_err!("{} is not valid state JSON: {e}", path.display())
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Writes a JSON state file atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| crate::internal_err!("cannot serialise {}: {e}", path.display()))?;
    atomic_write(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_open_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = Workspace::open(dir.path().to_path_buf()).unwrap();
        let err = Workspace::open(dir.path().to_path_buf()).unwrap_err();
        assert_eq!(err.code(), "WorkspaceLocked");
        assert!(err.message().contains(&format!("process {}", std::process::id())));
        drop(first);
        Workspace::open(dir.path().to_path_buf()).expect("lock released on drop");
    }

    #[test]
    fn a_lock_lingering_after_close_is_waited_for() {
        // A child forked by another thread holds the closed workspace's lock until its exec;
        // here another descriptor of the lock file stands in for it for 200 ms.
        let dir = tempfile::tempdir().unwrap();
        drop(Workspace::open(dir.path().to_path_buf()).unwrap());
        let lingering = File::options().read(true).write(true).open(dir.path().join(LOCK_FILE)).unwrap();
        lingering.lock().unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(lingering);
        });
        let started = std::time::Instant::now();
        Workspace::open(dir.path().to_path_buf()).expect("opened once the lingering lock is gone");
        assert!(started.elapsed() >= std::time::Duration::from_millis(150));
        release.join().unwrap();
    }

    #[test]
    fn clear_keeps_the_lock_and_what_it_is_told_to() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path().to_path_buf()).unwrap();
        for sub in ["lake/b", "kernel", "streams/s"] {
            fs::create_dir_all(dir.path().join(sub)).unwrap();
            fs::write(dir.path().join(sub).join("f"), b"x").unwrap();
        }
        fs::write(dir.path().join("clock.json"), b"{}").unwrap();
        assert_eq!(disk_usage(dir.path()), 3 + 2 + fs::metadata(dir.path().join(".lock")).unwrap().len());
        ws.clear(&[KERNEL_DIR]).unwrap();
        let mut names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, vec![".lock", "kernel"]);
        assert_eq!(Workspace::open(dir.path().to_path_buf()).unwrap_err().code(), "WorkspaceLocked", "still locked");
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_json(&path, &vec![1, 2]).unwrap();
        write_json(&path, &vec![3]).unwrap();
        assert_eq!(read_json::<Vec<i32>>(&path).unwrap(), Some(vec![3]));
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }
}
