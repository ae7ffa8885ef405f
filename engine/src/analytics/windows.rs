//! Window state: the records of windows not fired yet (Arrow segments for TUMBLE, HOP and
//! CUMULATE, merged sessions for SESSION), and the rows of the windows that fire.
//!
//! A segment is the decoded rows of one step's records (the source table's columns plus
//! their time and the watermark on their arrival), kept in memory and in an Arrow IPC file
//! beside the state (`<app>.windows/`), written once: a step adds a segment, a window firing
//! drops the segments whose rows all fired and rewrites only those partly fired.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, TimestampMillisecondArray, UInt32Array};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use serde::{Deserialize, Serialize};

use super::decode::decode_lines;
use super::sql::{TableDecl, WindowCall, WindowKind};
use crate::error::Result;
use crate::internal_err;

/// The columns a segment adds to the source's: each row's time (event or processing, ms)
/// and the watermark when it arrived (a row counts only in windows that watermark had not
/// passed).
const TIME: &str = "__lakebook_time";
const ARRIVAL: &str = "__lakebook_arrival";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct WindowState {
    /// Rows whose windows are open, oldest first.
    #[serde(default)]
    segments: Vec<Segment>,
    pub(super) fired_until: Option<i64>,
    /// SESSION windows not fired yet, per partition key.
    #[serde(default)]
    sessions: BTreeMap<String, Vec<Session>>,
}

/// Rows of open windows, saved as one Arrow IPC file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Segment {
    /// The file in the application's windows folder; None until saved.
    file: Option<String>,
    /// The earliest row time (no window of the segment ends before its first window).
    min_time: i64,
    #[serde(skip)]
    rows: Option<RecordBatch>,
}

/// One session window `[start, end)`: its records, and the end is the last record's time
/// plus the gap.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session {
    start: i64,
    end: i64,
    records: Vec<(i64, String)>,
}

impl WindowState {
    /// Keeps `rows` (the source's columns) of open windows: `times` each row's time,
    /// `arrivals` the watermark each arrived at; `kept` which rows to keep.
    pub(super) fn buffer(&mut self, rows: &RecordBatch, times: &[i64], arrivals: &[i64], kept: &[bool]) -> Result<()> {
        let mask = BooleanArray::from(kept.to_vec());
        if mask.true_count() == 0 {
            return Ok(());
        }
        let df = |e: arrow_schema::ArrowError| internal_err!("{e}");
        let mut fields: Vec<Field> = rows.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend([Field::new(TIME, DataType::Int64, false), Field::new(ARRIVAL, DataType::Int64, false)]);
        let mut columns: Vec<ArrayRef> = rows.columns().to_vec();
        columns.extend([Arc::new(Int64Array::from(times.to_vec())) as ArrayRef, Arc::new(Int64Array::from(arrivals.to_vec()))]);
        let all = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(df)?;
        let rows = datafusion::arrow::compute::filter_record_batch(&all, &mask).map_err(df)?;
        let min_time = times.iter().zip(kept).filter(|(_, k)| **k).map(|(t, _)| *t).min().unwrap_or(i64::MAX);
        self.segments.push(Segment { file: None, min_time, rows: Some(rows) });
        Ok(())
    }

    /// Adds a record to its key's sessions as Flink merges session windows: the record's own
    /// window `[ts, ts + gap)` merges with every open session it touches (ends included), and
    /// is late (false) when it touches none and the watermark has passed its end.
    pub(super) fn join_session(&mut self, key: &str, ts: i64, line: String, gap: i64, watermark: Option<i64>) -> bool {
        let watermark = watermark.unwrap_or(i64::MIN);
        let list = self.sessions.entry(key.to_string()).or_default();
        let mut merged = Session { start: ts, end: ts.saturating_add(gap), records: vec![(ts, line)] };
        let mut joined = false;
        let mut i = 0;
        while i < list.len() {
            let s = &list[i];
            if s.end - 1 > watermark && s.start <= merged.end && s.end >= merged.start {
                let s = list.swap_remove(i);
                merged.start = merged.start.min(s.start);
                merged.end = merged.end.max(s.end);
                merged.records.extend(s.records);
                joined = true;
                i = 0;
            } else {
                i += 1;
            }
        }
        if !joined && merged.end - 1 <= watermark {
            if list.is_empty() {
                self.sessions.remove(key);
            }
            return false;
        }
        list.push(merged);
        true
    }

    pub(super) fn open_records(&self) -> usize {
        self.segments.iter().map(|s| s.rows.as_ref().map_or(0, RecordBatch::num_rows)).sum::<usize>()
            + self.sessions.values().flatten().map(|s| s.records.len()).sum::<usize>()
    }

    /// Writes the segments not saved yet into `dir` (names from `prefix`, unique per step)
    /// and lists every segment file the state refers to.
    pub(super) fn save_segments(&mut self, dir: &Path, prefix: &str, files: &mut Vec<String>) -> Result<()> {
        for segment in &mut self.segments {
            if segment.file.is_none() {
                let rows = segment.rows.as_ref().ok_or_else(|| internal_err!("a segment without rows"))?;
                let name = format!("{prefix}-{}.arrow", files.len());
                crate::sql::write_arrow_file(&dir.join(&name), &rows.schema(), std::slice::from_ref(rows))?;
                segment.file = Some(name);
            }
            files.extend(segment.file.clone());
        }
        Ok(())
    }

    /// Reads the saved segments' rows back from `dir`.
    pub(super) fn load_segments(&mut self, dir: &Path) -> Result<()> {
        for segment in &mut self.segments {
            let name = segment.file.as_deref().ok_or_else(|| internal_err!("a saved segment without a file"))?;
            let path = dir.join(name);
            let (schema, batches) = crate::sql::read_arrow_file(&path)?;
            segment.rows = Some(datafusion::arrow::compute::concat_batches(&schema, &batches).map_err(|e| internal_err!("{e}"))?);
        }
        Ok(())
    }
}

/// The rows of the windows that fire at `watermark` (each row once per window it is in,
/// with `window_start`, `window_end` and `window_time`); what stays open stays buffered.
pub(super) fn fire(source: &TableDecl, call: &WindowCall, state: &mut WindowState, watermark: Option<i64>) -> Result<Option<RecordBatch>> {
    let Some(watermark) = watermark else { return Ok(None) };
    let df = |e: arrow_schema::ArrowError| internal_err!("{e}");
    let mut parts: Vec<RecordBatch> = Vec::new();
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    if let WindowKind::Session { .. } = call.kind {
        let mut lines: Vec<String> = Vec::new();
        for list in state.sessions.values_mut() {
            let (fired, open): (Vec<Session>, Vec<Session>) = std::mem::take(list).into_iter().partition(|s| s.end - 1 <= watermark);
            *list = open;
            for session in fired {
                for (_, line) in session.records {
                    lines.push(line);
                    starts.push(session.start);
                    ends.push(session.end);
                }
            }
        }
        state.sessions.retain(|_, list| !list.is_empty());
        if !lines.is_empty() {
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            parts.push(decode_lines(source, &lines)?);
        }
    } else {
        let fired_until = state.fired_until.unwrap_or(i64::MIN);
        let mut new_until = fired_until;
        let mut segments = Vec::with_capacity(state.segments.len());
        for segment in std::mem::take(&mut state.segments) {
            // Nothing in it can fire yet: kept as it is (and its file with it).
            if call.kind.first_end(segment.min_time) - 1 > watermark {
                segments.push(segment);
                continue;
            }
            let rows = segment.rows.as_ref().ok_or_else(|| internal_err!("a segment without rows"))?;
            let column = |name: &str| rows.column_by_name(name).and_then(|c| c.as_any().downcast_ref::<Int64Array>()).ok_or_else(|| internal_err!("a segment without {name}"));
            let (times, arrivals) = (column(TIME)?, column(ARRIVAL)?);
            let mut take: Vec<u32> = Vec::new();
            let mut keep = vec![false; rows.num_rows()];
            let mut min_time = i64::MAX;
            for (i, (ts, arrival)) in times.values().iter().zip(arrivals.values().iter()).enumerate() {
                call.kind.each_window(*ts, |start, end| {
                    if end <= fired_until || end - 1 <= *arrival {
                        return;
                    }
                    if end - 1 <= watermark {
                        take.push(i as u32);
                        starts.push(start);
                        ends.push(end);
                        new_until = new_until.max(end);
                    } else {
                        keep[i] = true;
                    }
                });
                if keep[i] {
                    min_time = min_time.min(*ts);
                }
            }
            if !take.is_empty() {
                parts.push(datafusion::arrow::compute::take_record_batch(rows, &UInt32Array::from(take)).map_err(df)?);
            }
            let kept = keep.iter().filter(|k| **k).count();
            if kept == rows.num_rows() {
                segments.push(segment);
            } else if kept > 0 {
                let rows = datafusion::arrow::compute::filter_record_batch(rows, &BooleanArray::from(keep)).map_err(df)?;
                segments.push(Segment { file: None, min_time, rows: Some(rows) });
            }
        }
        state.segments = segments;
        state.fired_until = Some(new_until);
    }
    if parts.is_empty() {
        return Ok(None);
    }
    let data = datafusion::arrow::compute::concat_batches(&parts[0].schema(), &parts).map_err(df)?;
    let ts_field = |name: &str| Field::new(name, DataType::Timestamp(TimeUnit::Millisecond, None), false);
    let schema = Arc::new(source.schema()?);
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.extend([ts_field("window_start"), ts_field("window_end"), ts_field("window_time")]);
    let mut columns: Vec<ArrayRef> = data.columns()[..schema.fields().len()].to_vec();
    columns.push(Arc::new(TimestampMillisecondArray::from(starts)));
    columns.push(Arc::new(TimestampMillisecondArray::from(ends.clone())));
    columns.push(Arc::new(TimestampMillisecondArray::from(ends.iter().map(|e| e - 1).collect::<Vec<_>>())));
    Ok(Some(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(df)?))
}

/// Each row's partition key (its PARTITION BY values as text), or None without keys.
pub(super) fn partition_keys(rows: &RecordBatch, columns: &[String]) -> Result<Option<Vec<String>>> {
    if columns.is_empty() {
        return Ok(None);
    }
    let options = datafusion::arrow::util::display::FormatOptions::default().with_null("\\N");
    let formatters = columns
        .iter()
        .map(|c| {
            let column = rows.column_by_name(c).ok_or_else(|| internal_err!("no column {c}"))?;
            datafusion::arrow::util::display::ArrayFormatter::try_new(column.as_ref(), &options).map_err(|e| internal_err!("{e}"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some((0..rows.num_rows()).map(|i| formatters.iter().map(|f| f.value(i).to_string()).collect::<Vec<_>>().join("\u{1f}")).collect()))
}

/// The results in window order (by `window_end`, then `window_start`, when the query
/// returns them), as one batch.
pub(super) fn in_window_order(batches: Vec<RecordBatch>) -> Result<RecordBatch> {
    let schema = batches.first().map(RecordBatch::schema).ok_or_else(|| internal_err!("no result batches"))?;
    let all = datafusion::arrow::compute::concat_batches(&schema, &batches).map_err(|e| internal_err!("{e}"))?;
    let keys: Vec<datafusion::arrow::compute::SortColumn> = ["window_end", "window_start"]
        .iter()
        .filter_map(|n| all.column_by_name(n))
        .map(|c| datafusion::arrow::compute::SortColumn { values: c.clone(), options: None })
        .collect();
    if keys.is_empty() {
        return Ok(all);
    }
    let order = datafusion::arrow::compute::lexsort_to_indices(&keys, None).map_err(|e| internal_err!("{e}"))?;
    let columns = all.columns().iter().map(|c| datafusion::arrow::compute::take(c.as_ref(), &order, None)).collect::<std::result::Result<Vec<_>, _>>();
    RecordBatch::try_new(schema, columns.map_err(|e| internal_err!("{e}"))?).map_err(|e| internal_err!("{e}"))
}
