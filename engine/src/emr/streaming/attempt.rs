//! One task attempt: its working directory and environment, the mapper or reducer process
//! fed on stdin, the commit of its output, the Python a release's nodes run, and stderr
//! kept for the step's logs.

use super::*;

pub(super) fn map_part_path(ctx: &Ctx<'_>, node: &str, map: usize, reduce: usize) -> PathBuf {
    ctx.node_dir(node).join("map-output").join(format!("m-{map:06}")).join(format!("part-r-{reduce:05}"))
}

pub(super) enum AttemptInput {
    Map(Split),
    /// Partition files of every map, in map order.
    Reduce(Vec<PathBuf>),
}

pub(super) async fn attempt(ctx: &Ctx<'_>, task: TaskRef, attempt_no: u32, node: String, input: AttemptInput, mut lost: watch::Receiver<bool>) -> Outcome {
    let (map, index) = match task {
        TaskRef::Map(i) => (true, i),
        TaskRef::Reduce(i) => (false, i),
    };
    let task_id = ctx.task_id(map, index);
    let attempt_id = format!("attempt_{}_{attempt_no}", task_id.strip_prefix("task_").unwrap_or(&task_id));
    let record = TaskAttempt { attempt_id: attempt_id.clone(), task_id: task_id.clone(), node: node.clone(), state: AttemptState::Succeeded, exit_code: None, reason: None };
    let work = async {
        match input {
            AttemptInput::Map(split) => map_attempt(ctx, index, &split, &task_id, &attempt_id, &node).await,
            AttemptInput::Reduce(parts) => reduce_attempt(ctx, index, parts, &task_id, &attempt_id, &node).await,
        }
    };
    // The node's loss is checked first: losing a node removes its directory, so the script
    // may fail on the missing files before the loss is seen, and an attempt on a lost node is
    // KILLED, not FAILED (an unbiased select picked either at random: the EMR notebook then
    // counted the lost node's running map as failed and "Killed map tasks" 0, once).
    let result = tokio::select! {
        biased;
        _ = lost.wait_for(|gone| *gone) => Ok((Done::Killed, None)),
        result = work => result,
    };
    let mut record = record;
    let result = match result {
        Ok((done, exit)) => {
            record.exit_code = exit;
            Ok(done)
        }
        Err(AttemptError { exit, error }) => {
            record.exit_code = exit;
            Err(error)
        }
    };
    Outcome { task, attempt: record, result }
}

/// A failed attempt: its exit code (if it ran) and why.
pub(super) struct AttemptError {
    pub(super) exit: Option<i32>,
    pub(super) error: Error,
}

impl From<Error> for AttemptError {
    fn from(error: Error) -> Self {
        Self { exit: None, error }
    }
}

pub(super) type AttemptResult = std::result::Result<(Done, Option<i32>), AttemptError>;

/// The task's working directory, holding links to the shipped files.
pub(super) fn task_dir(ctx: &Ctx<'_>, node: &str, attempt_id: &str) -> Result<PathBuf> {
    let dir = ctx.node_dir(node).join("tasks").join(attempt_id);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    for (name, path) in ctx.shipped {
        let link = dir.join(name);
        if !link.exists() {
            std::os::unix::fs::symlink(path, &link).map_err(|e| Error::io(&link, e))?;
        }
    }
    Ok(dir)
}

pub(super) fn env_for(ctx: &Ctx<'_>, task_id: &str, attempt_id: &str, index: usize, map: bool) -> Vec<(String, String)> {
    vec![
        ("mapreduce_job_id".into(), ctx.job_id.to_string()),
        ("mapreduce_task_id".into(), task_id.to_string()),
        ("mapreduce_task_attempt_id".into(), attempt_id.to_string()),
        ("mapreduce_task_partition".into(), index.to_string()),
        ("mapreduce_task_ismap".into(), map.to_string()),
    ]
}

pub(super) async fn map_attempt(ctx: &Ctx<'_>, index: usize, split: &Split, task_id: &str, attempt_id: &str, node: &str) -> AttemptResult {
    let raw = read_split(ctx.lake, split).await?;
    let mut counters = Counters { bytes_read: if split.compressed { split.file_size } else { raw.len() as u64 }, ..Counters::default() };
    let (stdin, records) = normalise_lines(raw);
    counters.map_input_records = records;
    let dir = task_dir(ctx, node, attempt_id)?;
    let mut env = env_for(ctx, task_id, attempt_id, index, true);
    env.push(("mapreduce_map_input_file".into(), split.uri.to_string()));
    env.push(("mapreduce_map_input_start".into(), split.start.to_string()));
    env.push(("mapreduce_map_input_length".into(), split.length.to_string()));
    let stderr = ctx.log_dir.join(format!("{attempt_id}.stderr"));
    let out_dir = ctx.node_dir(node).join("out");
    std::fs::create_dir_all(&out_dir).map_err(|e| Error::io(&out_dir, e))?;
    let stdout = out_dir.join(format!("{attempt_id}.map"));
    let status = run_command(&ctx.command(&ctx.spec.mapper), &dir, &env, stdin, &stdout, &stderr, false).await?;
    let exit = check_exit(status, "mapper")?;
    let output = std::fs::read(&stdout).map_err(|e| Error::io(&stdout, e))?;
    let _ = std::fs::remove_file(&stdout);

    let reducers = ctx.spec.reducers;
    if reducers == 0 {
        let (lines, records, bytes) = tokio::task::spawn_blocking(move || text_output(&output))
            .await
            .map_err(|e| internal_err!("map output task: {e}"))?;
        counters.map_output_records = records;
        counters.map_output_bytes = bytes;
        commit(&ctx.committed.join(part_name(index)), &lines)?;
        return Ok((Done::Map { counters }, exit));
    }
    let partitions = tokio::task::spawn_blocking(move || partition_and_sort(&output, reducers))
        .await
        .map_err(|e| internal_err!("map output task: {e}"))?;
    counters.map_output_records = partitions.records;
    counters.map_output_bytes = partitions.bytes;
    let final_dir = ctx.node_dir(node).join("map-output").join(format!("m-{index:06}"));
    let tmp_dir = ctx.node_dir(node).join("map-output").join(format!(".{attempt_id}"));
    std::fs::create_dir_all(&tmp_dir).map_err(|e| Error::io(&tmp_dir, e))?;
    for (r, mut sorted) in partitions.parts.into_iter().enumerate() {
        if let (Some(combiner), false) = (&ctx.spec.combiner, sorted.is_empty()) {
            counters.combine_input_records += count_lines(&sorted);
            let output = if aggregate::is_aggregate(combiner) {
                aggregate::run(&sorted, true).map_err(|e| aggregate_failed("combiner", &e, &stderr))?.0
            } else {
                let combined = out_dir.join(format!("{attempt_id}.combine-{r}"));
                let status = run_command(&ctx.command(combiner), &dir, &env, Bytes::from(sorted), &combined, &stderr, true).await?;
                check_exit(status, "combiner")?;
                let output = std::fs::read(&combined).map_err(|e| Error::io(&combined, e))?;
                let _ = std::fs::remove_file(&combined);
                output
            };
            let again = tokio::task::spawn_blocking(move || partition_and_sort(&output, 1))
                .await
                .map_err(|e| internal_err!("combiner output task: {e}"))?;
            counters.combine_output_records += again.records;
            sorted = again.parts.into_iter().next().unwrap_or_default();
        }
        let path = tmp_dir.join(format!("part-r-{r:05}"));
        std::fs::write(&path, &sorted).map_err(|e| Error::io(&path, e))?;
    }
    // Task commit: the attempt's partition files become the map's output in one rename.
    let _ = std::fs::remove_dir_all(&final_dir);
    std::fs::rename(&tmp_dir, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
    Ok((Done::Map { counters }, exit))
}

pub(super) async fn reduce_attempt(ctx: &Ctx<'_>, index: usize, parts: Vec<PathBuf>, task_id: &str, attempt_id: &str, node: &str) -> AttemptResult {
    let mut runs = Vec::with_capacity(parts.len());
    let mut counters = Counters::default();
    for path in &parts {
        let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        counters.reduce_shuffle_bytes += data.len() as u64;
        runs.push(data);
    }
    let (merged, records, groups) = tokio::task::spawn_blocking(move || merge_runs(&runs))
        .await
        .map_err(|e| internal_err!("merge task: {e}"))?;
    counters.reduce_input_records = records;
    counters.reduce_input_groups = groups;
    let target = ctx.committed.join(part_name(index));
    let Some(reducer) = &ctx.spec.reducer else {
        counters.reduce_output_records = records;
        commit(&target, &merged)?;
        return Ok((Done::Reduce { counters }, None));
    };
    let stderr = ctx.log_dir.join(format!("{attempt_id}.stderr"));
    if aggregate::is_aggregate(reducer) {
        let (lines, out_records) = tokio::task::spawn_blocking(move || aggregate::run(&merged, false))
            .await
            .map_err(|e| internal_err!("aggregate task: {e}"))?
            .map_err(|e| aggregate_failed("reducer", &e, &stderr))?;
        counters.reduce_output_records = out_records;
        commit(&target, &lines)?;
        return Ok((Done::Reduce { counters }, None));
    }
    let dir = task_dir(ctx, node, attempt_id)?;
    let env = env_for(ctx, task_id, attempt_id, index, false);
    let out_dir = ctx.node_dir(node).join("out");
    std::fs::create_dir_all(&out_dir).map_err(|e| Error::io(&out_dir, e))?;
    let stdout = out_dir.join(format!("{attempt_id}.reduce"));
    let status = run_command(&ctx.command(reducer), &dir, &env, Bytes::from(merged), &stdout, &stderr, false).await?;
    let exit = check_exit(status, "reducer")?;
    let output = std::fs::read(&stdout).map_err(|e| Error::io(&stdout, e))?;
    let _ = std::fs::remove_file(&stdout);
    let (lines, out_records, _) = tokio::task::spawn_blocking(move || text_output(&output))
        .await
        .map_err(|e| internal_err!("reduce output task: {e}"))?;
    counters.reduce_output_records = out_records;
    commit(&target, &lines)?;
    Ok((Done::Reduce { counters }, exit))
}

/// Task commit of a part file: written beside, then renamed into place.
pub(super) fn commit(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

pub(super) fn check_exit(status: ExitStatus, what: &str) -> std::result::Result<Option<i32>, AttemptError> {
    use std::os::unix::process::ExitStatusExt;
    match status.code() {
        Some(0) => Ok(Some(0)),
        Some(code) => Err(AttemptError {
            exit: Some(code),
            error: service_err!(TaskFailed, "the {what} exited with code {code} (PipeMapRed.waitOutputThreads(): subprocess failed with code {code})"),
        }),
        None => Err(AttemptError {
            exit: None,
            error: service_err!(TaskFailed, "the {what} was killed by signal {}", status.signal().unwrap_or(0)),
        }),
    }
}

/// A built-in aggregate that refused its input fails the attempt as a Java exception would,
/// with the reason in the attempt's log.
pub(super) fn aggregate_failed(what: &str, reason: &str, stderr: &Path) -> AttemptError {
    let _ = std::fs::write(stderr, format!("Error running the aggregate {what}: {reason}\n"));
    AttemptError { exit: Some(1), error: service_err!(TaskFailed, "the aggregate {what} failed: {reason}") }
}

/// A shipped script whose `#!` names an interpreter this machine does not have at that path
/// gets the node image's one instead: `/usr/bin/python` is Python 2.7 on releases before
/// emr-7 (found on this machine as [`host_python2`]) and Python 3 on emr-7;
/// `/usr/bin/env python` likewise. Returns the rewritten script, or `None` to ship it as is.
pub(super) fn node_image_shebang(data: &[u8], python: PythonImage) -> Result<Option<Vec<u8>>> {
    let Some(rest) = data.strip_prefix(b"#!") else { return Ok(None) };
    let end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
    let line = String::from_utf8_lossy(&rest[..end]).trim_end_matches('\r').to_string();
    let mut words = line.split_whitespace();
    let Some(interpreter) = words.next() else { return Ok(None) };
    let mut args: Vec<&str> = words.collect();
    // `#!/usr/bin/env python`: the program is the first argument.
    let program = if interpreter.ends_with("/env") && !args.is_empty() { args.remove(0) } else { interpreter };
    let name = program.rsplit('/').next().unwrap_or(program);
    let wants = match name {
        "python" => python,
        "python2" | "python2.7" => PythonImage::Python2,
        _ => return Ok(None),
    };
    if program == interpreter && Path::new(interpreter).exists() && wants == PythonImage::Python3 {
        return Ok(None);
    }
    let host = match wants {
        PythonImage::Python2 => host_python2().ok_or_else(|| {
            service_err!(TaskFailed, "the script's {line:?} is Python 2.7 on this cluster's node image, and this machine has no Python 2.7")
                .with_hint("install Python 2.7 (e.g. `pyenv install 2.7.18`, or set LAKEBOOK_PYTHON2 to its interpreter), or create the cluster with --release-label emr-7.5.0, whose /usr/bin/python is Python 3")
        })?,
        PythonImage::Python3 => host_python3().ok_or_else(|| service_err!(TaskFailed, "this machine has no python3 for the script's {line:?}"))?,
    };
    let mut out = format!("#!{}", host.display()).into_bytes();
    for arg in args {
        out.push(b' ');
        out.extend_from_slice(arg.as_bytes());
    }
    out.extend_from_slice(&rest[end..]);
    Ok(Some(out))
}

/// An interpreter that answers `-c` with the major version asked for.
pub(super) fn runs_as(path: &Path, major: u32) -> bool {
    Command::new(path)
        .args(["-c", &format!("import sys; sys.exit(0 if sys.version_info[0] == {major} else 1)")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Python 2.7 on this machine: `$LAKEBOOK_PYTHON2`, `python2.7` / `python2` on PATH, or a
/// pyenv-installed 2.7 (pyenv's shims only answer when 2.7 is the selected version, so the
/// versions folder is searched too). Looked up once.
pub fn host_python2() -> Option<PathBuf> {
    static FOUND: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| {
            let mut candidates: Vec<PathBuf> = std::env::var_os("LAKEBOOK_PYTHON2").map(PathBuf::from).into_iter().collect();
            if let Some(path) = std::env::var_os("PATH") {
                for dir in std::env::split_paths(&path) {
                    candidates.push(dir.join("python2.7"));
                    candidates.push(dir.join("python2"));
                }
            }
            let roots = [std::env::var_os("PYENV_ROOT").map(PathBuf::from), std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv"))];
            for root in roots.into_iter().flatten() {
                let mut versions: Vec<PathBuf> = std::fs::read_dir(root.join("versions"))
                    .map(|dir| dir.flatten().map(|e| e.path()).filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("2.7"))).collect())
                    .unwrap_or_default();
                versions.sort();
                candidates.extend(versions.into_iter().rev().map(|v| v.join("bin").join("python2.7")));
            }
            candidates.into_iter().find(|p| p.is_file() && runs_as(p, 2))
        })
        .clone()
}

pub(super) fn host_python3() -> Option<PathBuf> {
    static FOUND: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path).map(|d| d.join("python3")).find(|p| p.is_file() && runs_as(p, 3))
        })
        .clone()
}

/// The last `n` lines of a file (empty if it cannot be read).
pub fn tail_lines(path: &Path, n: usize) -> String {
    let Ok(data) = std::fs::read(path) else { return String::new() };
    let text = String::from_utf8_lossy(&data);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A child process that is killed (with its process group) if the owner goes away first, as
/// tokio's `kill_on_drop(true)` does.
pub(super) struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            // The child leads its own process group, so `sh -c 'a | b'` dies whole.
            let _ = Command::new("kill").arg("-KILL").arg("--").arg(format!("-{}", child.id())).stderr(Stdio::null()).status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `sh -c command` in `dir` with `stdin` fed from a thread (so a process that writes
/// before it has read everything cannot deadlock), stdout to a file and stderr to the log
/// (appended with `append_stderr`, for a combiner after its mapper).
pub(super) async fn run_command(
    command: &str,
    dir: &Path,
    env: &[(String, String)],
    stdin: Bytes,
    stdout: &Path,
    stderr: &Path,
    append_stderr: bool,
) -> Result<ExitStatus> {
    use std::os::unix::process::CommandExt;
    let out = std::fs::File::create(stdout).map_err(|e| Error::io(stdout, e))?;
    let err = std::fs::OpenOptions::new()
        .create(true)
        .append(append_stderr)
        .write(true)
        .truncate(!append_stderr)
        .open(stderr)
        .map_err(|e| Error::io(stderr, e))?;
    let child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .process_group(0)
        .spawn()
        .map_err(|e| service_err!(TaskFailed, "cannot start `sh -c {command}`: {e}"))?;
    let mut guard = KillOnDrop(Some(child));
    let child = guard.0.as_mut().ok_or_else(|| internal_err!("child vanished"))?;
    if let Some(mut pipe) = child.stdin.take() {
        // A process that exits without reading all its input makes this fail with EPIPE;
        // the exit status alone decides the attempt.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&stdin);
        });
    }
    let mut delay = Duration::from_millis(1);
    loop {
        let child = guard.0.as_mut().ok_or_else(|| internal_err!("child vanished"))?;
        match child.try_wait() {
            Ok(Some(status)) => {
                guard.0 = None;
                return Ok(status);
            }
            Ok(None) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(20));
            }
            Err(e) => return Err(Error::io(dir, e)),
        }
    }
}
