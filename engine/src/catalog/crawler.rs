//! The crawler: lists the include path, reads a sample of each folder's files through the
//! lake API, classifies them, and works out tables — compatible sibling folders become
//! partitions of one table (named `key=value` folders give named partition keys, others
//! `partition_0…`), incompatible ones separate tables.

use std::collections::BTreeMap;

use futures::StreamExt;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::classify::{self, Classified, PARQUET_MAGIC};
use super::model::{Column, CrawlerConfig, SkippedFile, TableDefinition, sanitize_name};
use super::types::merge_glue_types;

use crate::error::Result;
use crate::lake::{Lake, S3Uri};
use crate::service_err;

/// Files larger than this are sampled (head, or the Parquet footer) instead of read whole.
const WHOLE_FILE_LIMIT: u64 = 8 * 1024 * 1024;
/// ORC keeps its schema behind stripes the reader seeks through: read whole, up to this.
const ORC_READ_LIMIT: u64 = 256 * 1024 * 1024;
/// How many files are read at once.
const READ_CONCURRENCY: usize = 16;
/// Two schemas belong to one table when they share at least this fraction of column names.
const SIMILARITY: f64 = 0.7;

/// A table the crawl found, before it is merged into the catalog.
#[derive(Debug, Clone)]
pub struct FoundTable {
    pub name: String,
    pub definition: TableDefinition,
    /// Partition values → partition location.
    pub partitions: BTreeMap<Vec<String>, String>,
    pub files: usize,
    pub bytes: u64,
}

/// What one crawl saw.
#[derive(Debug, Default)]
pub struct CrawlResult {
    pub tables: Vec<FoundTable>,
    pub skipped: Vec<SkippedFile>,
    pub files_seen: usize,
    pub files_read: usize,
}

struct FileInfo {
    /// Path segments below the include path (folders…, file name).
    segments: Vec<String>,
    size: u64,
    classified: Option<Classified>,
}

/// Crawls `config.target`; `progress(done, total)` is called as files are read.
pub async fn crawl(lake: &Lake, config: &CrawlerConfig, progress: &mut (dyn FnMut(usize, usize) + Send)) -> Result<CrawlResult> {
    let mut target = S3Uri::parse(&config.target)?;
    if !target.key.is_empty() && !target.key.ends_with('/') {
        target.key.push('/');
    }
    let exclusions = build_exclusions(&config.exclusions)?;
    let listing = lake.list(&target, true).await?;
    let mut result = CrawlResult::default();

    // Which files to read: not hidden, not excluded, at most sample_size per folder.
    let mut files: Vec<FileInfo> = Vec::new();
    let mut per_folder: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    let mut to_read: Vec<usize> = Vec::new();
    for object in listing.objects {
        let relative = object.key.strip_prefix(&target.key).unwrap_or(&object.key).to_string();
        let segments: Vec<String> = relative.split('/').map(str::to_string).collect();
        if segments.iter().any(|s| s.starts_with('_') || s.starts_with('.')) {
            continue;
        }
        result.files_seen += 1;
        if exclusions.is_match(&relative) {
            let key = format!("s3://{}/{}", target.bucket, object.key);
            result.skipped.push(SkippedFile { key, reason: "excluded by a pattern".into() });
            continue;
        }
        let folder = segments[..segments.len() - 1].to_vec();
        let count = per_folder.entry(folder).or_default();
        *count += 1;
        if config.sample_size.is_none_or(|n| *count <= n) {
            to_read.push(files.len());
        }
        files.push(FileInfo { segments, size: object.size, classified: None });
    }

    let total = to_read.len();
    let jobs: Vec<(usize, S3Uri, u64)> = to_read
        .iter()
        .map(|&i| {
            let key = format!("{}{}", target.key, files[i].segments.join("/"));
            (i, S3Uri { bucket: target.bucket.clone(), key }, files[i].size)
        })
        .collect();
    let mut reads = futures::stream::iter(jobs.into_iter().map(|(i, uri, size)| async move {
        let outcome = read_and_classify(lake, &uri, size).await;
        (i, uri, outcome)
    }))
    .buffer_unordered(READ_CONCURRENCY);
    let mut done = 0;
    while let Some((i, uri, outcome)) = reads.next().await {
        done += 1;
        progress(done, total);
        match outcome {
            Ok(classified) => files[i].classified = Some(classified),
            Err(reason) => result.skipped.push(SkippedFile { key: uri.to_string(), reason }),
        }
    }
    result.files_read = total;
    result.skipped.sort_by(|a, b| a.key.cmp(&b.key));

    // Files not sampled take their folder's format from a sampled sibling.
    let mut folder_class: BTreeMap<Vec<String>, Classified> = BTreeMap::new();
    for f in &files {
        if let Some(c) = &f.classified {
            folder_class.entry(f.segments[..f.segments.len() - 1].to_vec()).or_insert_with(|| c.clone());
        }
    }
    let sampled: std::collections::HashSet<usize> = to_read.iter().copied().collect();
    for (i, f) in files.iter_mut().enumerate() {
        if f.classified.is_none() && !sampled.contains(&i) {
            f.classified = folder_class.get(&f.segments[..f.segments.len() - 1]).cloned();
        }
    }

    let root_name = match target.key.trim_end_matches('/').rsplit('/').next() {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => target.bucket.clone(),
    };
    let classified: Vec<&FileInfo> = files.iter().filter(|f| f.classified.is_some()).collect();
    let mut found = Vec::new();
    decide(&classified, 0, &root_name, &format!("s3://{}/{}", target.bucket, target.key), &mut found, &mut result.skipped);
    for table in &mut found {
        table.name = format!("{}{}", config.table_prefix, table.name);
    }
    result.tables = found;
    Ok(result)
}

async fn read_and_classify(lake: &Lake, uri: &S3Uri, size: u64) -> std::result::Result<Classified, String> {
    let read_err = |e: crate::Error| format!("cannot read: {}", e.message());
    if size == 0 {
        return Err("empty file".into());
    }
    if size <= WHOLE_FILE_LIMIT {
        let data = lake.get(uri).await.map_err(read_err)?;
        let footer = parquet_footer_in(&data);
        return classify::classify(&data, footer);
    }
    let head = lake.get_range(uri, 0..WHOLE_FILE_LIMIT.min(size)).await.map_err(read_err)?;
    if head.starts_with(classify::ORC_MAGIC) {
        if size > ORC_READ_LIMIT {
            return Err(format!("ORC file over {} MB: its schema is not sampled", ORC_READ_LIMIT / 1_000_000));
        }
        let data = lake.get(uri).await.map_err(read_err)?;
        return classify::classify(&data, None);
    }
    if !head.starts_with(PARQUET_MAGIC) {
        return classify::classify(&head, None);
    }
    let tail = lake.get_range(uri, size - 8..size).await.map_err(read_err)?;
    let Some(len) = footer_len(&tail) else { return classify::classify(&head, None) };
    if len + 8 > size {
        return Err("not a valid Parquet file: footer length beyond the file".into());
    }
    let footer = lake.get_range(uri, size - 8 - len..size - 8).await.map_err(read_err)?;
    classify::classify(&head, Some(&footer))
}

/// The metadata block of a whole Parquet file, if its trailer is intact.
fn parquet_footer_in(data: &[u8]) -> Option<&[u8]> {
    if data.len() < 12 || !data.starts_with(PARQUET_MAGIC) {
        return None;
    }
    let len = footer_len(&data[data.len() - 8..])? as usize;
    let end = data.len() - 8;
    end.checked_sub(len).filter(|&start| start >= 4).map(|start| &data[start..end])
}

fn footer_len(trailer: &[u8]) -> Option<u64> {
    if trailer.len() != 8 || &trailer[4..] != PARQUET_MAGIC {
        return None;
    }
    Some(u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]) as u64)
}

fn build_exclusions(patterns: &[String]) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = GlobBuilder::new(pattern.trim_start_matches('/'))
            .literal_separator(true)
            .build()
            .map_err(|e| service_err!(InvalidInputException, "bad exclusion pattern {pattern:?}: {e}"))?;
        builder.add(glob);
    }
    builder.build().map_err(|e| service_err!(InvalidInputException, "bad exclusion patterns: {e}"))
}

/// Decides the tables under one folder (`depth` segments below the include path): one table
/// if all its files are compatible and equally deep, otherwise a table per sub-folder.
fn decide(files: &[&FileInfo], depth: usize, name: &str, location: &str, found: &mut Vec<FoundTable>, skipped: &mut Vec<SkippedFile>) {
    if files.is_empty() {
        return;
    }
    // A lone dataset folder (`web/`, not `2026/` or `day=01/`) is where the table starts.
    let lone_child = files.iter().all(|f| f.segments.len() > depth + 1 && f.segments[depth] == files[0].segments[depth]);
    let child = &files[0].segments[depth];
    if lone_child && !child.contains('=') && child.chars().any(|c| c.is_alphabetic()) {
        return decide(files, depth + 1, child, &format!("{location}{child}/"), found, skipped);
    }
    if let Some(table) = as_one_table(files, depth, name, location) {
        found.push(table);
        return;
    }
    let mut children: BTreeMap<&str, Vec<&FileInfo>> = BTreeMap::new();
    for f in files {
        if f.segments.len() == depth + 1 {
            skipped.push(SkippedFile {
                key: format!("{location}{}", f.segments[depth]),
                reason: "sits beside folders with other schemas; move it into a folder of its own".into(),
            });
        } else {
            children.entry(f.segments[depth].as_str()).or_default().push(f);
        }
    }
    for (child, group) in children {
        let child_name = match child.split_once('=') {
            Some((_, value)) => format!("{name}_{value}"),
            None => child.to_string(),
        };
        decide(&group, depth + 1, &child_name, &format!("{location}{child}/"), found, skipped);
    }
}

fn as_one_table(files: &[&FileInfo], depth: usize, name: &str, location: &str) -> Option<FoundTable> {
    let first = files[0].classified.as_ref()?;
    let levels = files[0].segments.len() - depth - 1;
    let mut columns: Vec<Column> = Vec::new();
    for f in files {
        let c = f.classified.as_ref()?;
        if f.segments.len() - depth - 1 != levels || c.format != first.format || c.compression != first.compression {
            return None;
        }
        if !columns.is_empty() && similarity(&columns, &c.columns) < SIMILARITY {
            return None;
        }
        merge_columns(&mut columns, &c.columns);
    }
    // Partition keys from the folder names between the table and its files.
    let mut partition_keys = Vec::new();
    for level in 0..levels {
        let segment = |f: &&FileInfo| f.segments[depth + level].clone();
        let keys: std::collections::BTreeSet<Option<String>> =
            files.iter().map(|f| segment(f).split_once('=').map(|(k, _)| sanitize_name(k))).collect();
        let key = match keys.into_iter().collect::<Vec<_>>().as_slice() {
            [Some(k)] => k.clone(),
            _ => format!("partition_{level}"),
        };
        partition_keys.push(Column::new(key, "string"));
    }
    // A data column named like a partition key gives way to the key.
    columns.retain(|c| !partition_keys.iter().any(|k| k.name == c.name));
    for column in &mut columns {
        column.data_type = super::types::finalize_type(&column.data_type);
    }
    let mut partitions = BTreeMap::new();
    for f in files {
        let folders = &f.segments[depth..depth + levels];
        let values: Vec<String> = folders.iter().map(|s| s.split_once('=').map_or(s.clone(), |(_, v)| v.to_string())).collect();
        partitions.entry(values).or_insert_with(|| format!("{location}{}/", folders.join("/")));
    }
    if levels == 0 {
        partitions.clear();
    }
    Some(FoundTable {
        name: sanitize_name(name),
        definition: TableDefinition {
            location: location.to_string(),
            format: first.format.clone(),
            compression: first.compression.clone(),
            columns,
            partition_keys,
            bucketing: None,
        },
        partitions,
        files: files.len(),
        bytes: files.iter().map(|f| f.size).sum(),
    })
}

/// Shared column names over all column names; 1 when one schema extends the other (a file
/// with a new column still belongs to its table).
fn similarity(a: &[Column], b: &[Column]) -> f64 {
    let shared = b.iter().filter(|c| a.iter().any(|x| x.name == c.name)).count();
    if shared == a.len() || shared == b.len() {
        return 1.0;
    }
    let union = a.len() + b.len() - shared;
    if union == 0 { 1.0 } else { shared as f64 / union as f64 }
}

fn merge_columns(into: &mut Vec<Column>, more: &[Column]) {
    for column in more {
        match into.iter_mut().find(|c| c.name == column.name) {
            Some(existing) => existing.data_type = merge_glue_types(&existing.data_type, &column.data_type),
            None => into.push(column.clone()),
        }
    }
}
