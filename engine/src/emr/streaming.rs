//! The Hadoop-streaming runner: input splits as `FileInputFormat` cuts them, records as
//! `LineRecordReader` reads them, real mapper/combiner/reducer processes (`sh -c`) fed on
//! stdin, `HashPartitioner` partitions, sorted runs merged per reducer, retries, node loss,
//! and a commit of `part-NNNNN` + `_SUCCESS` to the lake.
//!
//! How a job runs:
//! - Splits: every object under each input prefix (or the object itself) whose file name does
//!   not start with `_` or `.`. A plain file is cut every `split_size` bytes (default
//!   [`BLOCK_SIZE`]) while more than [`SPLIT_SLOP`] split sizes remain; a compressed file
//!   ([`COMPRESSED_EXTENSIONS`]) is one split, decompressed for the mapper. A split not at
//!   offset 0 skips its first (partial) line and every split reads past its end to finish
//!   its last line, so each line is read by exactly one split (fetched with range reads).
//! - A map task runs the mapper in its own working directory (with the shipped files) with
//!   the split's lines on stdin and the streaming environment variables. Each output line is
//!   `key<TAB>value` (no tab: the whole line is the key, the value is empty); the record goes
//!   to partition `(hashBytes(key) & i32::MAX) % reducers` (Java's `String`/`Text` hash), each
//!   partition is sorted by key bytes (stable) and, with a combiner, combined and re-sorted.
//!   The partition files live under the node that ran the task (`nodes/<node>/`): losing the
//!   node loses them, as map output on a NodeManager's local disk is lost in Hadoop.
//! - A reduce task merges partition r of every map (a k-way merge of the sorted runs, ties in
//!   map order) and pipes it through the reducer into `part-0000r`. Without a reducer the
//!   merged lines are the output (Hadoop's identity reducer). With zero reducers each map's
//!   output is its own `part-0000m`, in map output order.
//! - Lines reach the reducer (and the output) as Hadoop's `TextInputWriter` /
//!   `TextOutputFormat` write them: `key<TAB>value` — so a line without a tab comes out as
//!   `key<TAB>` with a trailing tab, exactly as on a real cluster.
//! - Tasks run on the live core and task nodes, `slots_per_node` at a time each, assigned
//!   round-robin to the next node with a free slot. An attempt that exits non-zero is
//!   retried up to [`MAX_ATTEMPTS`] times (≙ `mapreduce.map.maxattempts`); attempts killed by
//!   a node loss do not count. Every attempt's stderr is kept in the step's log directory.
//! - Task output is committed to the step's work directory when the task succeeds (so, as
//!   with `FileOutputCommitter`, it survives a node loss) and copied to the output location
//!   when the job commits, followed by an empty `_SUCCESS`. A failed job writes nothing.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::future::Future;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::{mpsc, watch};

use super::aggregate;
use super::model::{ArmedLoss, AttemptState, Counters, NodeKind, Phase, PythonImage, StreamingStep, TaskAttempt};
use crate::error::{Error, Result};
use crate::lake::{Lake, S3Uri};
use crate::{internal_err, service_err};

/// HDFS's default block size, the split size when the step names none.
pub const BLOCK_SIZE: u64 = 128 * 1024 * 1024;
/// `FileInputFormat`'s SPLIT_SLOP: the last split may be up to 10 % larger than the others.
pub const SPLIT_SLOP: f64 = 1.1;
/// ≙ `mapreduce.map.maxattempts` / `mapreduce.reduce.maxattempts`.
pub const MAX_ATTEMPTS: u32 = 4;
/// Lines of stderr quoted in a task failure.
pub const FAILURE_TAIL_LINES: usize = 20;
/// Files with these endings are one split each and are decompressed for the mapper.
pub const COMPRESSED_EXTENSIONS: [&str; 5] = [".gz", ".bz2", ".zst", ".snappy", ".deflate"];
/// Bytes fetched at a time when a split reads on to find the end of a line.
const SCAN_CHUNK: u64 = 64 * 1024;

/// One map task's input (≙ FileSplit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub uri: S3Uri,
    pub start: u64,
    pub length: u64,
    pub file_size: u64,
    pub compressed: bool,
}

/// Whether a file is read whole through a decompressor.
pub fn is_compressed(key: &str) -> bool {
    COMPRESSED_EXTENSIONS.iter().any(|ext| key.ends_with(ext))
}

/// Whether `FileInputFormat` skips the file (its name starts with `_` or `.`).
pub fn is_hidden(key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    name.starts_with('_') || name.starts_with('.')
}

/// `FileInputFormat.getSplits` for one file.
pub fn splits_of(uri: &S3Uri, size: u64, split_size: u64) -> Vec<Split> {
    let split = |start, length, compressed| Split { uri: uri.clone(), start, length, file_size: size, compressed };
    if is_compressed(&uri.key) {
        return vec![split(0, size, true)];
    }
    let split_size = split_size.max(1);
    let mut splits = Vec::new();
    let mut remaining = size;
    while remaining as f64 / split_size as f64 > SPLIT_SLOP {
        splits.push(split(size - remaining, split_size, false));
        remaining -= split_size;
    }
    // An empty file still gets its (empty) split, as in Hadoop.
    if remaining != 0 || size == 0 {
        splits.push(split(size - remaining, remaining, false));
    }
    splits
}

/// Java's `WritableComparator.hashBytes` over the key's UTF-8 bytes (what `Text.hashCode`
/// returns): `h = 31 * h + (signed byte)`, starting at 1, wrapping.
pub fn hash_bytes(key: &[u8]) -> i32 {
    key.iter().fold(1i32, |h, &b| h.wrapping_mul(31).wrapping_add(b as i8 as i32))
}

/// `HashPartitioner.getPartition`: `(hash & Integer.MAX_VALUE) % reducers`.
pub fn partition(key: &[u8], reducers: u32) -> u32 {
    ((hash_bytes(key) & i32::MAX) as u32) % reducers.max(1)
}

/// A streaming output line's key and value: split at the first tab; no tab → the whole line
/// is the key and the value is empty.
pub fn key_value(line: &[u8]) -> (&[u8], &[u8]) {
    match line.iter().position(|&b| b == b'\t') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &[]),
    }
}

/// The lines of `data` (terminators `\n` or `\r\n` removed; a last line without terminator
/// counts).
pub fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let empty = data.is_empty();
    body.split(|&b| b == b'\n').filter(move |_| !empty).map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

/// Reads the lines a split owns: from after the first newline at or past `start` (or from
/// 0) up to and including the line that holds byte `start + length` (or the file's end).
pub async fn read_split(lake: &Lake, split: &Split) -> Result<Bytes> {
    if split.compressed {
        let raw = lake.get(&split.uri).await?;
        return decompress(&split.uri, &raw).map(Bytes::from);
    }
    let size = split.file_size;
    let end = split.start + split.length;
    let first = if split.start == 0 {
        0
    } else {
        match newline_at_or_after(lake, &split.uri, split.start, size).await? {
            Some(i) => i + 1,
            None => return Ok(Bytes::new()),
        }
    };
    let last = if end >= size {
        size
    } else {
        match newline_at_or_after(lake, &split.uri, end, size).await? {
            Some(i) => i + 1,
            None => size,
        }
    };
    if first >= last {
        return Ok(Bytes::new());
    }
    lake.get_range(&split.uri, first..last).await
}

async fn newline_at_or_after(lake: &Lake, uri: &S3Uri, from: u64, size: u64) -> Result<Option<u64>> {
    let mut at = from;
    while at < size {
        let to = (at + SCAN_CHUNK).min(size);
        let chunk = lake.get_range(uri, at..to).await?;
        if let Some(i) = chunk.iter().position(|&b| b == b'\n') {
            return Ok(Some(at + i as u64));
        }
        at = to;
    }
    Ok(None)
}

/// The whole text of a compressed input file.
pub fn decompress(uri: &S3Uri, raw: &[u8]) -> Result<Vec<u8>> {
    let key = &uri.key;
    let mut out = Vec::new();
    let failed = |e: std::io::Error| {
        service_err!(InvalidInputException, "cannot decompress {uri}: {e}").with_hint("the file's contents do not match its extension")
    };
    if key.ends_with(".gz") {
        flate2::read::MultiGzDecoder::new(raw).read_to_end(&mut out).map_err(failed)?;
    } else if key.ends_with(".bz2") {
        bzip2::read::MultiBzDecoder::new(raw).read_to_end(&mut out).map_err(failed)?;
    } else if key.ends_with(".zst") {
        out = zstd::decode_all(raw).map_err(failed)?;
    } else if key.ends_with(".deflate") {
        // Hadoop's DefaultCodec writes a zlib stream.
        flate2::read::ZlibDecoder::new(raw).read_to_end(&mut out).map_err(failed)?;
    } else if key.ends_with(".snappy") {
        out = unsnappy(raw).map_err(failed)?;
    } else {
        return Ok(raw.to_vec());
    }
    Ok(out)
}

/// Snappy as Hadoop's SnappyCodec writes it (blocks of `[raw length][compressed length]
/// [chunk]…`, big-endian u32s), or the framing format other tools write.
fn unsnappy(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    const FRAME_MAGIC: &[u8] = b"\xff\x06\x00\x00sNaPpY";
    let invalid = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    if raw.starts_with(FRAME_MAGIC) {
        let mut out = Vec::new();
        snap::read::FrameDecoder::new(raw).read_to_end(&mut out)?;
        return Ok(out);
    }
    let u32_at = |at: usize| raw.get(at..at + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let mut decoder = snap::raw::Decoder::new();
    let mut out = Vec::new();
    let mut at = 0;
    while at < raw.len() {
        let block_len = u32_at(at).ok_or_else(|| invalid("truncated block header"))?;
        at += 4;
        let block_end = out.len() + block_len;
        while out.len() < block_end {
            let chunk_len = u32_at(at).ok_or_else(|| invalid("truncated chunk header"))?;
            at += 4;
            let chunk = raw.get(at..at + chunk_len).ok_or_else(|| invalid("truncated chunk"))?;
            at += chunk_len;
            out.extend(decoder.decompress_vec(chunk).map_err(|e| invalid(&e.to_string()))?);
        }
    }
    Ok(out)
}

/// A live node the job may run tasks on.
#[derive(Debug, Clone)]
pub(crate) struct WorkerNode {
    pub id: String,
    pub kind: NodeKind,
}

/// Everything one streaming job needs.
pub(crate) struct Job<'a> {
    pub lake: &'a Lake,
    pub spec: &'a StreamingStep,
    /// `job_<cluster-millis>_<nnnn>`.
    pub job_id: String,
    /// Scratch space: node-local map outputs, task working dirs, committed task output.
    pub work_dir: PathBuf,
    /// `<attempt>.stderr` for every attempt.
    pub log_dir: PathBuf,
    pub nodes: Vec<WorkerNode>,
    pub slots_per_node: u32,
    pub armed: Vec<ArmedLoss>,
    /// What `/usr/bin/python` is on the cluster's node image.
    pub python: PythonImage,
}

/// What the runner tells the step as it goes.
pub(crate) enum Event<'e> {
    Progress { phase: Phase, maps_done: u32, maps_total: u32, reduces_done: u32, reduces_total: u32, shuffle_bytes: u64 },
    NodeLost { node: &'e str, reason: &'e str },
}

/// How the job ended: counters and attempts either way, and the error if it failed.
#[derive(Debug, Default)]
pub(crate) struct JobReport {
    pub counters: Counters,
    pub attempts: Vec<TaskAttempt>,
    pub error: Option<Error>,
}

/// Runs the job; `faults` brings the node losses requested while it runs. Dropping the
/// future kills every running task process.
pub(crate) async fn run(job: Job<'_>, mut faults: mpsc::UnboundedReceiver<ArmedLoss>, on_event: &mut (dyn FnMut(Event<'_>) + Send)) -> JobReport {
    let mut report = JobReport::default();
    let result = run_inner(&job, &mut faults, &mut report, on_event).await;
    // Node-local scratch goes either way; committed output was copied if the job succeeded.
    let _ = std::fs::remove_dir_all(&job.work_dir);
    if let Err(e) = result {
        report.error = Some(e);
    }
    report
}

async fn run_inner(job: &Job<'_>, faults: &mut mpsc::UnboundedReceiver<ArmedLoss>, report: &mut JobReport, on_event: &mut (dyn FnMut(Event<'_>) + Send)) -> Result<()> {
    let spec = job.spec;
    let output = spec.output.clone().folder();
    if !job.lake.list(&output, true).await?.objects.is_empty() {
        return Err(service_err!(FileAlreadyExistsException, "Output directory {output} already exists")
            .with_hint("choose a new output location, or delete this one with `%lake rm --recursive`"));
    }
    let splits = input_splits(job.lake, spec).await?;
    let io = |path: &Path, e| Error::io(path, e);
    let files_dir = job.work_dir.join("files");
    std::fs::create_dir_all(&files_dir).map_err(|e| io(&files_dir, e))?;
    std::fs::create_dir_all(&job.log_dir).map_err(|e| io(&job.log_dir, e))?;
    let mut shipped = Vec::new();
    for uri in &spec.files {
        let name = uri.file_name().to_string();
        if name.is_empty() {
            return Err(service_err!(ValidationException, "-files entry {uri} is not an object"));
        }
        let data = job.lake.get(uri).await?;
        let data = match node_image_shebang(&data, job.python)? {
            Some(rewritten) => Bytes::from(rewritten),
            None => data,
        };
        let path = files_dir.join(&name);
        std::fs::write(&path, &data).map_err(|e| io(&path, e))?;
        set_executable(&path)?;
        shipped.push((name, path));
    }
    let committed = job.work_dir.join("committed");
    std::fs::create_dir_all(&committed).map_err(|e| io(&committed, e))?;

    let ctx = Ctx { job_id: &job.job_id, spec, work_dir: &job.work_dir, log_dir: &job.log_dir, committed: &committed, shipped: &shipped, lake: job.lake };
    let mut sched = Scheduler::new(job, &splits);
    sched.run(&ctx, faults, report, on_event).await?;

    // Job commit: the committed task outputs in task order, then _SUCCESS.
    on_event(sched.progress(Phase::Commit));
    let parts = if spec.reducers == 0 { splits.len() } else { spec.reducers as usize };
    for i in 0..parts {
        let name = part_name(i);
        let path = committed.join(&name);
        let data = std::fs::read(&path).map_err(|e| io(&path, e))?;
        report.counters.bytes_written += data.len() as u64;
        job.lake.put(&output.join(&name), Bytes::from(data)).await?;
    }
    job.lake.put(&output.join("_SUCCESS"), Bytes::new()).await?;
    on_event(sched.progress(Phase::Done));
    Ok(())
}

/// `part-00007`.
pub fn part_name(index: usize) -> String {
    format!("part-{index:05}")
}

/// The splits of every input, in input order then key order.
pub async fn input_splits(lake: &Lake, spec: &StreamingStep) -> Result<Vec<Split>> {
    let split_size = spec.split_size.unwrap_or(BLOCK_SIZE);
    if split_size == 0 {
        return Err(service_err!(ValidationException, "the split size must be at least 1 byte"));
    }
    let mut splits = Vec::new();
    for input in &spec.input {
        let mut files = Vec::new();
        match lake.head(input).await {
            Ok(info) if !input.key.is_empty() && !input.key.ends_with('/') => files.push((input.clone(), info.size)),
            _ => {
                for object in lake.list(&input.clone().folder(), true).await?.objects {
                    files.push((S3Uri { bucket: object.bucket, key: object.key }, object.size));
                }
            }
        }
        files.retain(|(uri, _)| !is_hidden(&uri.key));
        if files.is_empty() {
            return Err(service_err!(InvalidInputException, "Input path does not exist: {input}")
                .with_hint("list what is there with `%lake ls`; files starting with _ or . are ignored"));
        }
        for (uri, size) in files {
            splits.extend(splits_of(&uri, size, split_size));
        }
    }
    Ok(splits)
}

fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(|e| Error::io(path, e))
}

/// The job-wide, read-only part of the attempts' context.
struct Ctx<'a> {
    job_id: &'a str,
    spec: &'a StreamingStep,
    work_dir: &'a Path,
    log_dir: &'a Path,
    committed: &'a Path,
    shipped: &'a [(String, PathBuf)],
    lake: &'a Lake,
}

impl Ctx<'_> {
    /// The command as the task runs it: a first word naming a shipped file runs that file from
    /// the task's directory (`-mapper wordSplitter.py`), as Hadoop's PipeMapRed looks the
    /// program up in the working directory before PATH.
    fn command(&self, command: &str) -> String {
        let trimmed = command.trim_start();
        let first = trimmed.split_whitespace().next().unwrap_or_default();
        if !first.contains('/') && self.shipped.iter().any(|(name, _)| name == first) {
            format!("./{trimmed}")
        } else {
            command.to_string()
        }
    }

    /// `task_…_m_000003` (the job id's tail after `job_`).
    fn task_id(&self, map: bool, index: usize) -> String {
        let tail = self.job_id.strip_prefix("job_").unwrap_or(self.job_id);
        format!("task_{tail}_{}_{index:06}", if map { 'm' } else { 'r' })
    }

    fn node_dir(&self, node: &str) -> PathBuf {
        self.work_dir.join("nodes").join(node)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskRef {
    Map(usize),
    Reduce(usize),
}

/// A finished attempt.
struct Outcome {
    task: TaskRef,
    attempt: TaskAttempt,
    result: std::result::Result<Done, Error>,
}

enum Done {
    Map { counters: Counters },
    Reduce { counters: Counters },
    /// Stopped by its node's loss.
    Killed,
}

#[derive(Default)]
struct TaskSlot {
    /// Node holding the completed output (for maps with reducers: node-local files).
    done_on: Option<String>,
    /// Index into the report's attempts of the attempt that produced the output.
    done_attempt: Option<usize>,
    counters: Counters,
    running: bool,
    failures: u32,
    next_attempt: u32,
}

struct NodeRun {
    id: String,
    kind: NodeKind,
    alive: bool,
    busy: u32,
    lost: watch::Sender<bool>,
}

type AttemptFuture<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

struct Scheduler {
    maps: Vec<TaskSlot>,
    reduces: Vec<TaskSlot>,
    splits: Vec<Split>,
    nodes: Vec<NodeRun>,
    cursor: usize,
    slots_per_node: u32,
    armed: Vec<ArmedLoss>,
    /// Map attempts that succeeded in this job (what `AfterMaps` counts).
    map_successes: u32,
    last_map_node: Option<String>,
    shuffle_bytes: u64,
}

impl Scheduler {
    fn new(job: &Job<'_>, splits: &[Split]) -> Self {
        let nodes = job
            .nodes
            .iter()
            .map(|n| NodeRun { id: n.id.clone(), kind: n.kind, alive: true, busy: 0, lost: watch::Sender::new(false) })
            .collect();
        Self {
            maps: splits.iter().map(|_| TaskSlot::default()).collect(),
            reduces: (0..job.spec.reducers).map(|_| TaskSlot::default()).collect(),
            splits: splits.to_vec(),
            nodes,
            cursor: 0,
            slots_per_node: job.slots_per_node.max(1),
            armed: job.armed.clone(),
            map_successes: 0,
            last_map_node: None,
            shuffle_bytes: 0,
        }
    }

    fn progress<'e>(&self, phase: Phase) -> Event<'e> {
        let done = |tasks: &[TaskSlot]| tasks.iter().filter(|t| t.done_on.is_some()).count() as u32;
        Event::Progress {
            phase,
            maps_done: done(&self.maps),
            maps_total: self.maps.len() as u32,
            reduces_done: done(&self.reduces),
            reduces_total: self.reduces.len() as u32,
            shuffle_bytes: self.shuffle_bytes,
        }
    }

    /// The next live node with a free slot, round-robin.
    fn free_node(&mut self) -> Option<usize> {
        let n = self.nodes.len();
        for step in 0..n {
            let i = (self.cursor + step) % n;
            if self.nodes[i].alive && self.nodes[i].busy < self.slots_per_node {
                self.cursor = (i + 1) % n;
                return Some(i);
            }
        }
        None
    }

    fn next_task(&self) -> Option<TaskRef> {
        if let Some(i) = self.maps.iter().position(|t| t.done_on.is_none() && !t.running) {
            return Some(TaskRef::Map(i));
        }
        if self.maps.iter().all(|t| t.done_on.is_some()) {
            return self.reduces.iter().position(|t| t.done_on.is_none() && !t.running).map(TaskRef::Reduce);
        }
        None
    }

    fn all_done(&self) -> bool {
        self.maps.iter().chain(&self.reduces).all(|t| t.done_on.is_some())
    }

    async fn run<'a>(
        &mut self,
        ctx: &'a Ctx<'a>,
        faults: &mut mpsc::UnboundedReceiver<ArmedLoss>,
        report: &mut JobReport,
        on_event: &mut (dyn FnMut(Event<'_>) + Send),
    ) -> Result<()> {
        let mut running: FuturesUnordered<AttemptFuture<'a>> = FuturesUnordered::new();
        let mut faults_open = true;
        on_event(self.progress(Phase::Map));
        loop {
            // Launch what the free slots allow.
            while let Some(task) = self.next_task() {
                let Some(node) = self.free_node() else { break };
                self.nodes[node].busy += 1;
                let node_id = self.nodes[node].id.clone();
                let lost = self.nodes[node].lost.subscribe();
                let (slot, map) = match task {
                    TaskRef::Map(i) => (&mut self.maps[i], true),
                    TaskRef::Reduce(i) => (&mut self.reduces[i], false),
                };
                slot.running = true;
                let attempt_no = slot.next_attempt;
                slot.next_attempt += 1;
                if map {
                    report.counters.launched_map_tasks += 1;
                } else {
                    report.counters.launched_reduce_tasks += 1;
                }
                let inputs = match task {
                    TaskRef::Map(i) => AttemptInput::Map(self.splits[i].clone()),
                    TaskRef::Reduce(r) => AttemptInput::Reduce(
                        self.maps.iter().enumerate().filter_map(|(m, t)| t.done_on.clone().map(|n| map_part_path(ctx, &n, m, r))).collect(),
                    ),
                };
                running.push(Box::pin(attempt(ctx, task, attempt_no, node_id, inputs, lost)));
            }
            if running.is_empty() {
                if self.all_done() {
                    return Ok(());
                }
                return Err(service_err!(NodeLost, "no core or task node is left to run the job's tasks")
                    .with_hint("create a new cluster; lost nodes are not replaced"));
            }
            tokio::select! {
                Some(outcome) = running.next() => self.finish(ctx, outcome, report, on_event)?,
                fault = faults.recv(), if faults_open => match fault {
                    Some(loss) if loss.after_maps <= self.map_successes => self.lose(ctx, loss.kind, report, on_event)?,
                    Some(loss) => self.armed.push(loss),
                    None => faults_open = false,
                },
            }
        }
    }

    fn finish(&mut self, ctx: &Ctx<'_>, outcome: Outcome, report: &mut JobReport, on_event: &mut (dyn FnMut(Event<'_>) + Send)) -> Result<()> {
        let Outcome { task, mut attempt, result } = outcome;
        let node = self.nodes.iter_mut().find(|n| n.id == attempt.node).ok_or_else(|| internal_err!("attempt ran on unknown node {}", attempt.node))?;
        node.busy = node.busy.saturating_sub(1);
        let alive = node.alive;
        let map = matches!(task, TaskRef::Map(_));
        let slot = match task {
            TaskRef::Map(i) => &mut self.maps[i],
            TaskRef::Reduce(i) => &mut self.reduces[i],
        };
        slot.running = false;
        match result {
            Ok(Done::Killed) => {
                attempt.state = AttemptState::Killed;
                attempt.reason.get_or_insert_with(|| format!("node {} was lost", attempt.node));
                if map { report.counters.killed_map_tasks += 1 } else { report.counters.killed_reduce_tasks += 1 }
                report.attempts.push(attempt);
            }
            Ok(Done::Map { .. } | Done::Reduce { .. }) if !alive => {
                attempt.state = AttemptState::Killed;
                attempt.reason = Some(format!("node {} was lost as the attempt finished", attempt.node));
                if map { report.counters.killed_map_tasks += 1 } else { report.counters.killed_reduce_tasks += 1 }
                report.attempts.push(attempt);
            }
            Ok(Done::Map { counters } | Done::Reduce { counters }) => {
                if !map {
                    self.shuffle_bytes += counters.reduce_shuffle_bytes;
                }
                slot.done_on = Some(attempt.node.clone());
                slot.done_attempt = Some(report.attempts.len());
                slot.counters = counters;
                report.attempts.push(attempt.clone());
                if map {
                    self.map_successes += 1;
                    self.last_map_node = Some(attempt.node.clone());
                }
                let phase = if self.maps.iter().all(|t| t.done_on.is_some()) && !self.reduces.is_empty() { Phase::Reduce } else { Phase::Map };
                on_event(self.progress(phase));
                while let Some(i) = self.armed.iter().position(|a| a.after_maps <= self.map_successes) {
                    let loss = self.armed.remove(i);
                    self.lose(ctx, loss.kind, report, on_event)?;
                }
            }
            Err(error) => {
                attempt.state = AttemptState::Failed;
                attempt.reason = Some(error.message());
                if map { report.counters.failed_map_tasks += 1 } else { report.counters.failed_reduce_tasks += 1 }
                slot.failures += 1;
                let failures = slot.failures;
                report.attempts.push(attempt.clone());
                if failures >= MAX_ATTEMPTS {
                    self.total_counters(report);
                    let tail = tail_lines(&ctx.log_dir.join(format!("{}.stderr", attempt.attempt_id)), FAILURE_TAIL_LINES);
                    return Err(service_err!(
                        TaskFailed,
                        "Task {} failed {failures} times; the last attempt, {} on {}, {}.\nstderr (last {FAILURE_TAIL_LINES} lines):\n{}",
                        attempt.task_id,
                        attempt.attempt_id,
                        attempt.node,
                        error.message(),
                        if tail.is_empty() { "(empty)".to_string() } else { tail }
                    )
                    .with_hint("fix the script and add the step again; every attempt's stderr is in the step's logs"));
                }
            }
        }
        if self.all_done() {
            self.total_counters(report);
        }
        Ok(())
    }

    /// Sums the counters of the attempts whose output the job uses (as Hadoop's job
    /// counters count successful attempts only).
    fn total_counters(&self, report: &mut JobReport) {
        let c = &mut report.counters;
        for t in self.maps.iter().chain(&self.reduces).filter(|t| t.done_on.is_some()) {
            let s = &t.counters;
            c.map_input_records += s.map_input_records;
            c.map_output_records += s.map_output_records;
            c.map_output_bytes += s.map_output_bytes;
            c.combine_input_records += s.combine_input_records;
            c.combine_output_records += s.combine_output_records;
            c.reduce_input_groups += s.reduce_input_groups;
            c.reduce_shuffle_bytes += s.reduce_shuffle_bytes;
            c.reduce_input_records += s.reduce_input_records;
            c.reduce_output_records += s.reduce_output_records;
            c.bytes_read += s.bytes_read;
        }
    }

    /// Takes a node of `kind` away: the node that ran the latest map if it is of that kind,
    /// else the last live one. Its running attempts are killed and, with reducers, the map
    /// outputs on its disk are lost, so those maps run again.
    fn lose(&mut self, ctx: &Ctx<'_>, kind: NodeKind, report: &mut JobReport, on_event: &mut (dyn FnMut(Event<'_>) + Send)) -> Result<()> {
        let preferred = self.last_map_node.as_ref().and_then(|id| self.nodes.iter().position(|n| &n.id == id && n.alive && n.kind == kind));
        let Some(index) = preferred.or_else(|| self.nodes.iter().rposition(|n| n.alive && n.kind == kind)) else {
            return Ok(());
        };
        let node = &mut self.nodes[index];
        node.alive = false;
        node.lost.send_replace(true);
        let id = node.id.clone();
        let _ = std::fs::remove_dir_all(ctx.node_dir(&id));
        let reason = match kind {
            NodeKind::Task => "the task node was lost (spot interruption); its map outputs are lost and rerun",
            _ => "the core node was lost (instance failure); its map outputs and HDFS blocks are lost",
        };
        on_event(Event::NodeLost { node: &id, reason });
        if !self.reduces.is_empty() {
            for slot in self.maps.iter_mut().filter(|t| t.done_on.as_deref() == Some(id.as_str())) {
                slot.done_on = None;
                slot.counters = Counters::default();
                if let Some(a) = slot.done_attempt.take().and_then(|i| report.attempts.get_mut(i)) {
                    a.state = AttemptState::Killed;
                    a.reason = Some(format!("map output lost with node {id}"));
                    report.counters.killed_map_tasks += 1;
                }
            }
        }
        if kind == NodeKind::Core && !self.nodes.iter().any(|n| n.alive && n.kind == NodeKind::Core) {
            self.total_counters(report);
            return Err(service_err!(NodeLost, "the last core node, {id}, was lost: HDFS is gone and the cluster with it")
                .with_hint("create a new cluster with more core nodes; put spot capacity in task nodes"));
        }
        Ok(())
    }
}

fn map_part_path(ctx: &Ctx<'_>, node: &str, map: usize, reduce: usize) -> PathBuf {
    ctx.node_dir(node).join("map-output").join(format!("m-{map:06}")).join(format!("part-r-{reduce:05}"))
}

enum AttemptInput {
    Map(Split),
    /// Partition files of every map, in map order.
    Reduce(Vec<PathBuf>),
}

async fn attempt(ctx: &Ctx<'_>, task: TaskRef, attempt_no: u32, node: String, input: AttemptInput, mut lost: watch::Receiver<bool>) -> Outcome {
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
    let result = tokio::select! {
        result = work => result,
        _ = lost.wait_for(|gone| *gone) => Ok((Done::Killed, None)),
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
struct AttemptError {
    exit: Option<i32>,
    error: Error,
}

impl From<Error> for AttemptError {
    fn from(error: Error) -> Self {
        Self { exit: None, error }
    }
}

type AttemptResult = std::result::Result<(Done, Option<i32>), AttemptError>;

/// The task's working directory, holding links to the shipped files.
fn task_dir(ctx: &Ctx<'_>, node: &str, attempt_id: &str) -> Result<PathBuf> {
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

fn env_for(ctx: &Ctx<'_>, task_id: &str, attempt_id: &str, index: usize, map: bool) -> Vec<(String, String)> {
    vec![
        ("mapreduce_job_id".into(), ctx.job_id.to_string()),
        ("mapreduce_task_id".into(), task_id.to_string()),
        ("mapreduce_task_attempt_id".into(), attempt_id.to_string()),
        ("mapreduce_task_partition".into(), index.to_string()),
        ("mapreduce_task_ismap".into(), map.to_string()),
    ]
}

async fn map_attempt(ctx: &Ctx<'_>, index: usize, split: &Split, task_id: &str, attempt_id: &str, node: &str) -> AttemptResult {
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

async fn reduce_attempt(ctx: &Ctx<'_>, index: usize, parts: Vec<PathBuf>, task_id: &str, attempt_id: &str, node: &str) -> AttemptResult {
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
fn commit(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

fn check_exit(status: ExitStatus, what: &str) -> std::result::Result<Option<i32>, AttemptError> {
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
fn aggregate_failed(what: &str, reason: &str, stderr: &Path) -> AttemptError {
    let _ = std::fs::write(stderr, format!("Error running the aggregate {what}: {reason}\n"));
    AttemptError { exit: Some(1), error: service_err!(TaskFailed, "the aggregate {what} failed: {reason}") }
}

/// A shipped script whose `#!` names an interpreter this machine does not have at that path
/// gets the node image's one instead: `/usr/bin/python` is Python 2.7 on releases before
/// emr-7 (found on this machine as [`host_python2`]) and Python 3 on emr-7;
/// `/usr/bin/env python` likewise. Returns the rewritten script, or `None` to ship it as is.
fn node_image_shebang(data: &[u8], python: PythonImage) -> Result<Option<Vec<u8>>> {
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
fn runs_as(path: &Path, major: u32) -> bool {
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

fn host_python3() -> Option<PathBuf> {
    static FOUND: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path).map(|d| d.join("python3")).find(|p| p.is_file() && runs_as(p, 3))
        })
        .clone()
}

/// The mapper's stdin: each line `\n`-terminated (CR LF → LF, a last line without newline
/// gets one), and how many records that is.
fn normalise_lines(raw: Bytes) -> (Bytes, u64) {
    if raw.is_empty() {
        return (raw, 0);
    }
    let records = raw.iter().filter(|&&b| b == b'\n').count() as u64 + u64::from(!raw.ends_with(b"\n"));
    if !raw.contains(&b'\r') && raw.ends_with(b"\n") {
        return (raw, records);
    }
    let mut out = Vec::with_capacity(raw.len() + 1);
    for line in lines(&raw) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    (Bytes::from(out), records)
}

fn count_lines(data: &[u8]) -> u64 {
    lines(data).count() as u64
}

/// Process output as `TextOutputFormat` writes it: `key<TAB>value\n` per line. Returns the
/// text, the record count and the key + value bytes.
fn text_output(output: &[u8]) -> (Vec<u8>, u64, u64) {
    let mut out = Vec::with_capacity(output.len() + output.len() / 16);
    let (mut records, mut bytes) = (0, 0);
    for line in lines(output) {
        let (key, value) = key_value(line);
        out.extend_from_slice(key);
        out.push(b'\t');
        out.extend_from_slice(value);
        out.push(b'\n');
        records += 1;
        bytes += (key.len() + value.len()) as u64;
    }
    (out, records, bytes)
}

/// A map's output cut into partitions, each sorted by key.
struct Partitioned {
    parts: Vec<Vec<u8>>,
    records: u64,
    bytes: u64,
}

/// Partitions the lines by key hash and sorts each partition by key bytes (stable, so equal
/// keys keep their output order); lines are written as `key<TAB>value\n`.
fn partition_and_sort(output: &[u8], reducers: u32) -> Partitioned {
    let mut records: Vec<(u32, &[u8], &[u8])> = lines(output)
        .map(|line| {
            let (key, value) = key_value(line);
            (partition(key, reducers), key, value)
        })
        .collect();
    records.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let mut parts = vec![Vec::new(); reducers.max(1) as usize];
    let mut bytes = 0;
    for (p, key, value) in &records {
        let part = &mut parts[*p as usize];
        part.extend_from_slice(key);
        part.push(b'\t');
        part.extend_from_slice(value);
        part.push(b'\n');
        bytes += (key.len() + value.len()) as u64;
    }
    Partitioned { parts, records: records.len() as u64, bytes }
}

/// One line at the head of a sorted run, ordered by (key, run) for the merge heap.
struct Head<'a> {
    key: &'a [u8],
    run: usize,
    line: &'a [u8],
}

impl PartialEq for Head<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head<'_> {}
impl PartialOrd for Head<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.key, self.run).cmp(&(other.key, other.run))
    }
}

/// K-way merge of sorted runs of `key<TAB>value\n` lines (ties in run order). Returns the
/// merged text, the record count and the number of distinct keys (reduce input groups).
pub fn merge_runs(runs: &[Vec<u8>]) -> (Vec<u8>, u64, u64) {
    let mut iters: Vec<_> = runs.iter().map(|r| lines(r)).collect();
    let mut heap = BinaryHeap::new();
    for (run, it) in iters.iter_mut().enumerate() {
        if let Some(line) = it.next() {
            heap.push(Reverse(Head { key: key_value(line).0, run, line }));
        }
    }
    let mut out = Vec::with_capacity(runs.iter().map(Vec::len).sum());
    let (mut records, mut groups) = (0, 0);
    let mut previous: Option<&[u8]> = None;
    while let Some(Reverse(head)) = heap.pop() {
        if previous != Some(head.key) {
            groups += 1;
            previous = Some(head.key);
        }
        records += 1;
        out.extend_from_slice(head.line);
        out.push(b'\n');
        if let Some(line) = iters[head.run].next() {
            heap.push(Reverse(Head { key: key_value(line).0, run: head.run, line }));
        }
    }
    (out, records, groups)
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
struct KillOnDrop(Option<Child>);

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
async fn run_command(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_string_hashes() {
        // "a".hashCode() == 97; "hello".hashCode() == 99162322; "polygenelubricants" has
        // hashCode Integer.MIN_VALUE.
        assert_eq!(hash_bytes(b""), 1);
        assert_eq!(hash_bytes(b"a"), 31 + 97);
        assert_eq!(hash_bytes(b"ab"), (31 + 97) * 31 + 98);
        // Text hashes bytes starting from 1 (String.hashCode starts from 0): 1 * 31^5 + "hello".hashCode().
        assert_eq!(hash_bytes(b"hello"), 28629151i32.wrapping_add(99162322));
        // Non-ASCII UTF-8 bytes are signed in Java: é = C3 A9 → -61, -87.
        assert_eq!(hash_bytes("é".as_bytes()), (31 - 61) * 31 - 87);
        assert_eq!(partition(b"a", 3), 128 % 3);
        assert_eq!(partition("é".as_bytes(), 7), (((31 - 61) * 31 - 87) & i32::MAX) as u32 % 7);
    }

    #[test]
    fn key_is_up_to_the_first_tab() {
        assert_eq!(key_value(b"k\tv\tw"), (&b"k"[..], &b"v\tw"[..]));
        assert_eq!(key_value(b"lonely"), (&b"lonely"[..], &b""[..]));
        assert_eq!(key_value(b"\tv"), (&b""[..], &b"v"[..]));
        let lines: Vec<&[u8]> = lines(b"a\r\nb\n\nc").collect();
        assert_eq!(lines, vec![&b"a"[..], b"b", b"", b"c"]);
        assert_eq!(lines_of(b""), 0);
    }

    fn lines_of(data: &[u8]) -> usize {
        lines(data).count()
    }

    #[test]
    fn splits_follow_file_input_format() {
        let uri = S3Uri::parse("s3://bkt/in/f.txt").unwrap();
        let kib = 1024;
        let s = splits_of(&uri, 1024 * kib, 256 * kib);
        assert_eq!(s.iter().map(|s| (s.start, s.length)).collect::<Vec<_>>(), vec![(0, 256 * kib), (256 * kib, 256 * kib), (512 * kib, 256 * kib), (768 * kib, 256 * kib)]);
        // 1.1 split sizes stay one split; a little more is cut.
        assert_eq!(splits_of(&uri, 110, 100).len(), 1);
        assert_eq!(splits_of(&uri, 111, 100).iter().map(|s| s.length).collect::<Vec<_>>(), vec![100, 11]);
        assert_eq!(splits_of(&uri, 0, 100).len(), 1);
        let gz = S3Uri::parse("s3://bkt/in/f.txt.gz").unwrap();
        assert_eq!(splits_of(&gz, 10 * BLOCK_SIZE, 100).len(), 1);
        assert!(is_hidden("in/_SUCCESS") && is_hidden("in/.part.crc") && !is_hidden("in/_x/part"));
    }

    #[test]
    fn partitions_are_sorted_by_unsigned_key_bytes_and_stable() {
        let out = "b\t1\nä\t2\na\t3\nb\t0\nz\n".as_bytes();
        let p = partition_and_sort(out, 1);
        assert_eq!(String::from_utf8(p.parts[0].clone()).unwrap(), "a\t3\nb\t1\nb\t0\nz\t\nä\t2\n");
        assert_eq!(p.records, 5);
        let (merged, records, groups) = merge_runs(&[b"a\t1\nc\t1\n".to_vec(), b"a\t2\nb\t1\n".to_vec(), Vec::new()]);
        assert_eq!(String::from_utf8(merged).unwrap(), "a\t1\na\t2\nb\t1\nc\t1\n");
        assert_eq!((records, groups), (4, 3));
    }

    #[test]
    fn hadoop_snappy_blocks_decode() {
        let data = b"line one\nline two\n".repeat(100);
        let compressed = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        let mut framed = (data.len() as u32).to_be_bytes().to_vec();
        framed.extend((compressed.len() as u32).to_be_bytes());
        framed.extend(&compressed);
        let uri = S3Uri::parse("s3://bkt/x.snappy").unwrap();
        assert_eq!(decompress(&uri, &framed).unwrap(), data);
    }

    #[tokio::test]
    async fn every_line_is_read_by_exactly_one_split() {
        let dir = tempfile::tempdir().unwrap();
        let ws = crate::Workspace::open(dir.path().to_path_buf()).unwrap();
        let clock = std::sync::Arc::new(crate::Clock::open(&ws).unwrap());
        let lake = Lake::open(&ws, clock).unwrap();
        lake.create_bucket("bkt").unwrap();
        // Lines of varied length, one longer than a split, no final newline.
        let mut text = String::new();
        for i in 0..200 {
            text.push_str(&format!("{i}:{}\n", "x".repeat(i % 37)));
        }
        text.push_str(&"y".repeat(300));
        text.push('\n');
        text.push_str("last");
        let uri = S3Uri::parse("s3://bkt/t.txt").unwrap();
        lake.put(&uri, Bytes::from(text.clone())).await.unwrap();
        for split_size in [1, 7, 64, 100, 1000, 100_000] {
            let mut seen = Vec::new();
            for split in splits_of(&uri, text.len() as u64, split_size) {
                seen.extend_from_slice(&read_split(&lake, &split).await.unwrap());
            }
            assert_eq!(String::from_utf8(seen).unwrap(), text, "split size {split_size}");
        }
    }
}
