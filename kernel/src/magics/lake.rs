//! `%lake`: the data lake, like the `aws s3` commands — buckets and objects under
//! `s3://bucket/key`, stored as plain files in the workspace.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray, TimestampMillisecondArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use bytes::Bytes;
use clap::{CommandFactory, Parser, Subcommand};
use lakebook_engine::S3Uri;
use lakebook_engine::lake::{BucketCreated, Lake, LakeSetting, ObjectInfo, SettingSource};

use super::{Body, Ctx, Form, MagicSpec};
use crate::render::Bundle;
use crate::render::{self, Footer, TableOptions};
use crate::error::CellError;

pub const SPEC: MagicSpec = MagicSpec {
    name: "lake",
    summary: "The data lake: buckets and objects at s3://bucket/key, kept as files in the workspace or on S3 (connect)",
    form: Form::LineAndCell,
    command: LakeArgs::command,
    body: Body::Data,
    run: runner!(SPEC, run),
};

#[derive(Debug, Parser)]
#[command(
    about = "The data lake: buckets and objects at s3://bucket/key, kept as files in the workspace or on an S3-compatible store",
    after_help = "Objects are ordinary files under <workspace>/lake/<bucket>/<key>; DuckDB, pandas or Spark can read them directly.\n\
                  After `%lake connect s3://BUCKET/PREFIX [--endpoint URL]` (or with LAKEBOOK_LAKE set) they are the objects\n\
                  s3://BUCKET/PREFIX/<bucket>/<key> of that store, and every service works over them unchanged."
)]
pub struct LakeArgs {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Where the workspace and the lake are, and how much the lake holds
    Info,
    /// Put the lake on an S3-compatible store: every bucket b becomes s3://BUCKET/PREFIX/b/
    /// there; credentials from the AWS environment or profile (never stored)
    Connect {
        /// s3://bucket[/prefix] of the store
        url: String,
        /// An S3-compatible endpoint (MinIO, moto, Ceph …), e.g. http://127.0.0.1:9000
        #[arg(long)]
        endpoint: Option<String>,
        /// The store's region (else AWS_REGION, the profile's, or us-east-1)
        #[arg(long)]
        region: Option<String>,
    },
    /// Put the lake back in the workspace's own folder (objects on S3 stay there)
    Disconnect,
    /// Make a bucket (≙ CreateBucket)
    Mb {
        /// s3://bucket
        uri: String,
        /// If it exists already, keep it as it is instead of failing (a cell that can be rerun)
        #[arg(long)]
        if_not_exists: bool,
        /// Allow upper case and '_' as us-east-1 did before March 2018 (names like the AWS
        /// guides' my_athena_results)
        #[arg(long)]
        legacy_name: bool,
    },
    /// Remove a bucket (≙ DeleteBucket)
    Rb {
        /// s3://bucket
        uri: String,
        /// Delete the bucket's objects first
        #[arg(long)]
        force: bool,
    },
    /// List buckets, or the objects under s3://bucket/prefix (≙ ListBuckets, ListObjectsV2)
    Ls {
        /// s3://bucket[/prefix]; none lists the buckets
        uri: Option<String>,
        /// List everything under the prefix, not just one folder level
        #[arg(short, long)]
        recursive: bool,
    },
    /// Upload a local file, or with %%lake put the cell body (≙ PutObject)
    Put {
        /// s3://bucket/key
        uri: String,
        /// The local file to upload (relative to the notebook's folder)
        #[arg(long, value_name = "LOCAL_PATH")]
        from: Option<PathBuf>,
    },
    /// Print a text object (≙ GetObject)
    Cat {
        /// s3://bucket/key
        uri: String,
    },
    /// Delete an object, or everything under a prefix with --recursive (≙ DeleteObject)
    Rm {
        /// s3://bucket/key or s3://bucket/prefix/
        uri: String,
        /// Delete every object under the prefix
        #[arg(short, long)]
        recursive: bool,
    },
    /// Copy within the lake, or between the lake and local files (≙ CopyObject)
    Cp {
        /// s3://bucket/key or a local path
        source: String,
        /// s3://bucket/key or a local path; a trailing / keeps the file name
        destination: String,
        /// Copy every object under the source prefix
        #[arg(short, long)]
        recursive: bool,
    },
}

pub async fn run(args: LakeArgs, mut ctx: Ctx<'_>) -> Result<Option<Bundle>, CellError> {
    if ctx.body.is_some() && !matches!(args.verb, Verb::Put { .. }) {
        return Err(CellError::usage("only `%%lake put s3://bucket/key` takes a cell body"));
    }
    match args.verb {
        Verb::Connect { url, endpoint, region } => {
            let setting = LakeSetting::new(&url, endpoint, region)?;
            Lake::connect(ctx.engine()?.workspace(), Some(&setting))?;
            ctx.workspace.reopen().await?;
            ctx.out.stdout(&format!("the lake is on {}: bucket b is {}\n", setting.describe(), setting.real_url("b", "")));
            Ok(None)
        }
        Verb::Disconnect => {
            let before = ctx.engine()?.lake().remote().map(|(s, _)| s.describe());
            Lake::connect(ctx.engine()?.workspace(), None)?;
            ctx.workspace.reopen().await?;
            match before {
                Some(was) => ctx.out.stdout(&format!("the lake is in the workspace again; the objects on {was} stay there\n")),
                None => ctx.out.stdout("the lake was in the workspace already\n"),
            }
            Ok(None)
        }
        verb => run_verb(verb, ctx).await,
    }
}

async fn run_verb(verb: Verb, mut ctx: Ctx<'_>) -> Result<Option<Bundle>, CellError> {
    let engine = ctx.engine()?;
    let lake = engine.lake();
    let out = ctx.out;
    match verb {
        Verb::Connect { .. } | Verb::Disconnect => Err(CellError::usage("connect and disconnect are handled before the lake is used")),
        Verb::Info => {
            let info = lake.info()?;
            let place = match info.remote {
                None => ("lake directory", info.location.clone()),
                Some(SettingSource::Workspace) => ("lake (S3, %lake connect)", info.location.clone()),
                Some(SettingSource::Environment) => ("lake (S3, $LAKEBOOK_LAKE)", info.location.clone()),
            };
            let rows = [
                ("workspace", info.workspace.display().to_string()),
                (place.0, place.1),
                ("buckets", info.buckets.to_string()),
                ("objects", info.objects.to_string()),
                ("size", render::human_bytes(info.bytes)),
                ("clock", format!("{} ({})", lakebook_engine::clock::format_time(engine.clock().now()), engine.clock().mode())),
            ];
            let batch = string_table(&["item", "value"], rows.iter().map(|(k, v)| vec![k.to_string(), v.clone()]))?;
            Ok(Some(render::table(&batch, &TableOptions::default(), &Footer::default())))
        }
        Verb::Mb { uri, if_not_exists, legacy_name } => {
            let uri = S3Uri::parse(&uri)?;
            bucket_only(&uri)?;
            let made = if legacy_name { lake.create_legacy_bucket(&uri.bucket)? } else { lake.create_bucket(&uri.bucket)? };
            match made {
                BucketCreated::Created => out.stdout(&format!("make_bucket: {}\n", uri.bucket)),
                BucketCreated::AlreadyOwnedByYou if if_not_exists => super::kept(out, &format!("bucket {}", uri.bucket)),
                BucketCreated::AlreadyOwnedByYou => out.stderr(&format!(
                    "warning: the bucket {} already exists and is yours (BucketAlreadyOwnedByYou); nothing to do\n",
                    uri.bucket
                )),
            }
            Ok(None)
        }
        Verb::Rb { uri, force } => {
            let uri = S3Uri::parse(&uri)?;
            bucket_only(&uri)?;
            let deleted = lake.delete_bucket(&uri.bucket, force).await?;
            if deleted > 0 {
                out.stdout(&format!("deleted {deleted} objects\n"));
            }
            out.stdout(&format!("remove_bucket: {}\n", uri.bucket));
            Ok(None)
        }
        Verb::Ls { uri: None, .. } => {
            let buckets = lake.list_buckets()?;
            let names: ArrayRef = Arc::new(StringArray::from_iter_values(buckets.iter().map(|b| b.name.clone())));
            let created: ArrayRef = Arc::new(
                TimestampMillisecondArray::from_iter_values(buckets.iter().map(|b| b.created.timestamp_millis()))
                    .with_timezone("UTC"),
            );
            let schema = Schema::new(vec![
                Field::new("bucket", DataType::Utf8, false),
                Field::new("created", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
            ]);
            let batch = RecordBatch::try_new(Arc::new(schema), vec![names, created]).map_err(arrow_bug)?;
            Ok(Some(render::table(&batch, &TableOptions::default(), &Footer::default())))
        }
        Verb::Ls { uri: Some(uri), recursive } => {
            let uri = S3Uri::parse(&uri)?;
            let listing = lake.list(&uri, recursive).await?;
            let total: u64 = listing.objects.iter().map(|o| o.size).sum();
            let mut keys = Vec::new();
            let mut sizes = Vec::new();
            let mut times = Vec::new();
            for prefix in &listing.prefixes {
                keys.push(prefix.clone());
                sizes.push(None);
                times.push(None);
            }
            for object in &listing.objects {
                keys.push(object.key.clone());
                sizes.push(Some(object.size));
                times.push(Some(object.last_modified.timestamp_millis()));
            }
            let schema = Schema::new(vec![
                Field::new("key", DataType::Utf8, false),
                Field::new("size", DataType::UInt64, true),
                Field::new("modified", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), true),
            ]);
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(keys)),
                Arc::new(UInt64Array::from(sizes)),
                Arc::new(TimestampMillisecondArray::from(times).with_timezone("UTC")),
            ];
            let batch = RecordBatch::try_new(Arc::new(schema), columns).map_err(arrow_bug)?;
            let footer = Footer { extra: vec![format!("{} in objects", render::human_bytes(total))], ..Footer::default() };
            Ok(Some(render::table(&batch, &TableOptions::plain(), &footer)))
        }
        Verb::Put { uri, from } => {
            let uri = S3Uri::parse_object(&uri)?;
            let (data, source) = match (from, ctx.body) {
                (Some(_), Some(_)) => {
                    return Err(CellError::usage("give either --from LOCAL_PATH or a cell body, not both"));
                }
                (Some(path), None) => (read_local(&path)?, path.display().to_string()),
                (None, Some(body)) => {
                    let mut text = body.to_string();
                    if !text.ends_with('\n') {
                        text.push('\n');
                    }
                    (Bytes::from(text), "cell".to_string())
                }
                (None, None) => {
                    return Err(CellError::usage("nothing to upload")
                        .with_detail("use `%lake put s3://b/key --from LOCAL_PATH`, or a `%%lake put s3://b/key` cell whose body is the object"));
                }
            };
            let info = lake.put(&uri, data).await?;
            out.stdout(&format!("upload: {source} to {uri} ({} bytes)\n", info.size));
            Ok(None)
        }
        Verb::Cat { uri } => {
            let uri = S3Uri::parse_object(&uri)?;
            let data = lake.get(&uri).await?;
            let text = std::str::from_utf8(&data).ok().filter(|t| !t.contains('\0')).ok_or_else(|| {
                CellError::new("BinaryObject", format!("{uri} is binary ({} bytes), not text", data.len()))
                    .with_detail(format!("copy it to a local file with `%lake cp {uri} ./{}`", uri.file_name()))
            })?;
            out.stdout(text);
            Ok(None)
        }
        Verb::Rm { uri, recursive } => {
            let uri = S3Uri::parse(&uri)?;
            if recursive {
                for key in lake.delete_prefix(&uri).await? {
                    out.stdout(&format!("delete: s3://{}/{key}\n", uri.bucket));
                }
            } else {
                let uri = S3Uri::parse_object(&uri.to_string())?;
                if lake.delete(&uri).await? {
                    out.stdout(&format!("delete: {uri}\n"));
                } else {
                    out.stderr(&format!("warning: nothing at {uri} (S3 reports success for a missing key)\n"));
                }
            }
            Ok(None)
        }
        Verb::Cp { source, destination, recursive } => {
            copy(&engine, out, &source, &destination, recursive).await?;
            Ok(None)
        }
    }
}

async fn copy(
    engine: &lakebook_engine::Lakebook,
    out: &crate::output::Output,
    source: &str,
    destination: &str,
    recursive: bool,
) -> Result<(), CellError> {
    let lake = engine.lake();
    let is_s3 = |s: &str| s.starts_with("s3://");
    match (is_s3(source), is_s3(destination)) {
        (false, false) => Err(CellError::usage("one side of `%lake cp` must be an s3:// location")),
        (true, _) if recursive => {
            let from = S3Uri::parse(source)?;
            let listing = lake.list(&from, true).await?;
            let base = from.key.clone();
            for object in listing.objects {
                let relative = object.key.strip_prefix(&base).unwrap_or(&object.key).trim_start_matches('/');
                let src = S3Uri { bucket: object.bucket.clone(), key: object.key.clone() };
                copy_one(engine, out, &src, &dest_for(destination, relative, true)).await?;
            }
            Ok(())
        }
        (true, _) => {
            let from = S3Uri::parse_object(source)?;
            copy_one(engine, out, &from, &dest_for(destination, from.file_name(), false)).await
        }
        (false, true) => {
            let path = PathBuf::from(source);
            if recursive {
                let mut files = Vec::new();
                walk_local(&path, &mut files).map_err(|e| local_error(&path, e))?;
                for file in files {
                    let relative = file.strip_prefix(&path).unwrap_or(&file).to_string_lossy().replace('\\', "/");
                    let to = S3Uri::parse(&dest_for(destination, &relative, true))?;
                    let info = lake.put(&to, read_local(&file)?).await?;
                    out.stdout(&format!("upload: {} to {to} ({} bytes)\n", file.display(), info.size));
                }
                Ok(())
            } else {
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let to = S3Uri::parse_object(&dest_for(destination, &name, false))?;
                let info = lake.put(&to, read_local(&path)?).await?;
                out.stdout(&format!("upload: {source} to {to} ({} bytes)\n", info.size));
                Ok(())
            }
        }
    }
}

async fn copy_one(
    engine: &lakebook_engine::Lakebook,
    out: &crate::output::Output,
    from: &S3Uri,
    to: &str,
) -> Result<(), CellError> {
    let lake = engine.lake();
    if to.starts_with("s3://") {
        let to = S3Uri::parse_object(to)?;
        let info: ObjectInfo = lake.copy(from, &to).await?;
        out.stdout(&format!("copy: {from} to {to} ({} bytes)\n", info.size));
    } else {
        let data = lake.get(from).await?;
        let path = PathBuf::from(to);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| local_error(parent, e))?;
        }
        lakebook_engine::workspace::atomic_write(&path, &data)?;
        out.stdout(&format!("download: {from} to {to} ({} bytes)\n", data.len()));
    }
    Ok(())
}

/// Where a copy lands: into a "folder" destination (trailing `/`, or always when recursive)
/// the name is appended.
fn dest_for(destination: &str, name: &str, recursive: bool) -> String {
    if destination.ends_with('/') || (recursive && !name.is_empty()) {
        format!("{}/{name}", destination.trim_end_matches('/'))
    } else if !destination.starts_with("s3://") && Path::new(destination).is_dir() {
        Path::new(destination).join(name).display().to_string()
    } else {
        destination.to_string()
    }
}

fn bucket_only(uri: &S3Uri) -> Result<(), CellError> {
    if uri.key.is_empty() {
        Ok(())
    } else {
        Err(CellError::new("InvalidBucketName", format!("{uri} has a key; give just s3://{}", uri.bucket)))
    }
}

fn read_local(path: &Path) -> Result<Bytes, CellError> {
    std::fs::read(path).map(Bytes::from).map_err(|e| local_error(path, e))
}

fn local_error(path: &Path, e: std::io::Error) -> CellError {
    let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default();
    CellError::new("LocalFileError", format!("{}: {e}", path.display()))
        .with_detail(format!("local paths are relative to the kernel's folder {cwd}"))
}

fn walk_local(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            walk_local(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

pub(crate) fn string_table(names: &[&str], rows: impl Iterator<Item = Vec<String>>) -> Result<RecordBatch, CellError> {
    let rows: Vec<Vec<String>> = rows.collect();
    let fields: Vec<Field> = names.iter().map(|n| Field::new(*n, DataType::Utf8, false)).collect();
    let columns: Vec<ArrayRef> = (0..names.len())
        .map(|c| Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r[c].clone()))) as ArrayRef)
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(arrow_bug)
}

fn arrow_bug(e: arrow_schema::ArrowError) -> CellError {
    CellError::bug(format!("building a result table: {e}"))
}
