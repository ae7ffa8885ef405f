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
//!   when the job commits: staged under `<output>/_temporary/<job>/`, decided by a `_COMMIT`
//!   marker, renamed into place, the marker last as `_SUCCESS` ([`finish_commit`], which the
//!   next open also runs for a step a killed kernel left running). A failed job writes nothing.

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

mod attempt;
mod schedule;
mod shuffle;

pub use attempt::{host_python2, tail_lines};
use attempt::*;
use schedule::*;
pub use shuffle::merge_runs;
use shuffle::*;

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

    // Job commit: the committed task outputs staged under `_temporary/<job>/` (hidden), an
    // empty `_COMMIT` once all are there (the decision), then moved into place.
    on_event(sched.progress(Phase::Commit));
    let parts = if spec.reducers == 0 { splits.len() } else { spec.reducers as usize };
    let staging = staging_folder(&output, &job.job_id);
    for i in 0..parts {
        let name = part_name(i);
        let path = committed.join(&name);
        let data = std::fs::read(&path).map_err(|e| io(&path, e))?;
        report.counters.bytes_written += data.len() as u64;
        job.lake.put(&staging.join(&name), Bytes::from(data)).await?;
    }
    job.lake.put(&staging.join(COMMIT_MARKER), Bytes::new()).await?;
    finish_commit(job.lake, &output, &job.job_id)?;
    on_event(sched.progress(Phase::Done));
    Ok(())
}

/// The marker a job's staging folder gets once every part is staged.
const COMMIT_MARKER: &str = "_COMMIT";

/// `<output>/_temporary/<job>/`.
fn staging_folder(output: &S3Uri, job_id: &str) -> S3Uri {
    output.clone().folder().join(&format!("_temporary/{job_id}/"))
}

/// Moves a decided job commit's staged parts into `output` and its `_COMMIT` marker to
/// `_SUCCESS` (last: `_SUCCESS` means every part is in place), then removes the staging
/// folder. Each move is a rename that is skipped once made, so a commit a killed kernel cut
/// short is finished by the next open. False when the job never decided to commit: its
/// staged parts are removed and `output` is left as it was before the job.
pub(crate) fn finish_commit(lake: &Lake, output: &S3Uri, job_id: &str) -> Result<bool> {
    let output = output.clone().folder();
    let staging = staging_folder(&output, job_id);
    let staged = lake.keys_in(&staging)?;
    let marker = staging.join(COMMIT_MARKER);
    let decided = staged.contains(&marker.key);
    if decided {
        for key in staged.iter().filter(|k| **k != marker.key) {
            let name = key.rsplit('/').next().unwrap_or_default();
            lake.rename(&S3Uri { bucket: output.bucket.clone(), key: key.clone() }, &output.join(name))?;
        }
        lake.rename(&marker, &output.join("_SUCCESS"))?;
    }
    lake.delete_marked(&output, "_temporary")?;
    Ok(decided || lake.keys_in(&output)?.contains(&output.join("_SUCCESS").key))
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
