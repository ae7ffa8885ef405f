//! The shuffle: map output normalised to `key<TAB>value` lines, partitioned with
//! `HashPartitioner`, sorted per partition, and the k-way merge of sorted runs a reducer reads.

use super::*;

/// The mapper's stdin: each line `\n`-terminated (CR LF → LF, a last line without newline
/// gets one), and how many records that is.
pub(super) fn normalise_lines(raw: Bytes) -> (Bytes, u64) {
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

pub(super) fn count_lines(data: &[u8]) -> u64 {
    lines(data).count() as u64
}

/// Process output as `TextOutputFormat` writes it: `key<TAB>value\n` per line. Returns the
/// text, the record count and the key + value bytes.
pub(super) fn text_output(output: &[u8]) -> (Vec<u8>, u64, u64) {
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
pub(super) struct Partitioned {
    pub(super) parts: Vec<Vec<u8>>,
    pub(super) records: u64,
    pub(super) bytes: u64,
}

/// Partitions the lines by key hash and sorts each partition by key bytes (stable, so equal
/// keys keep their output order); lines are written as `key<TAB>value\n`.
pub(super) fn partition_and_sort(output: &[u8], reducers: u32) -> Partitioned {
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
pub(super) struct Head<'a> {
    pub(super) key: &'a [u8],
    pub(super) run: usize,
    pub(super) line: &'a [u8],
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
