//! Window state: the records of windows not fired yet (slices for TUMBLE, HOP and CUMULATE,
//! merged sessions for SESSION), and the rows of the windows that fire.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, TimestampMillisecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use serde::{Deserialize, Serialize};

use super::decode_lines;
use super::sql::{TableDecl, WindowCall, WindowKind};
use crate::error::Result;
use crate::internal_err;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct WindowState {
    /// (event or processing time ms, record JSON, watermark on arrival) of records whose
    /// windows are open: a record counts only in windows whose end the watermark on its
    /// arrival had not passed.
    pub(super) buffered: Vec<(i64, String, i64)>,
    pub(super) fired_until: Option<i64>,
    /// SESSION windows not fired yet, per partition key.
    #[serde(default)]
    sessions: BTreeMap<String, Vec<Session>>,
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
        self.buffered.len() + self.sessions.values().flatten().map(|s| s.records.len()).sum::<usize>()
    }
}

/// The rows of the windows that fire at `watermark` (each row once per window it is in,
/// with `window_start`, `window_end` and `window_time`); what stays open stays buffered.
pub(super) fn fire(source: &TableDecl, call: &WindowCall, state: &mut WindowState, watermark: Option<i64>) -> Result<Option<RecordBatch>> {
    let Some(watermark) = watermark else { return Ok(None) };
    let mut lines: Vec<String> = Vec::new();
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    if let WindowKind::Session { .. } = call.kind {
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
    } else {
        let fired_until = state.fired_until.unwrap_or(i64::MIN);
        let mut keep = Vec::new();
        let mut new_until = fired_until;
        for (i, (ts, line, arrival)) in state.buffered.iter().enumerate() {
            let mut open = false;
            for (start, end) in call.kind.windows_of(*ts) {
                if end <= fired_until || end - 1 <= *arrival {
                    continue;
                }
                if end - 1 <= watermark {
                    lines.push(line.clone());
                    starts.push(start);
                    ends.push(end);
                    new_until = new_until.max(end);
                } else {
                    open = true;
                }
            }
            if open {
                keep.push(i);
            }
        }
        // `keep` is ascending: move the kept records rather than copy them.
        let mut kept = keep.into_iter().peekable();
        let buffered = std::mem::take(&mut state.buffered);
        state.buffered = buffered.into_iter().enumerate().filter(|(i, _)| kept.next_if_eq(i).is_some()).map(|(_, r)| r).collect();
        state.fired_until = Some(new_until);
    }
    if lines.is_empty() {
        return Ok(None);
    }
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let data = decode_lines(source, &lines)?;
    let ts_field = |name: &str| Field::new(name, DataType::Timestamp(TimeUnit::Millisecond, None), false);
    let mut fields: Vec<Field> = data.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.extend([ts_field("window_start"), ts_field("window_end"), ts_field("window_time")]);
    let mut columns: Vec<ArrayRef> = data.columns().to_vec();
    columns.push(Arc::new(TimestampMillisecondArray::from(starts)));
    columns.push(Arc::new(TimestampMillisecondArray::from(ends.clone())));
    columns.push(Arc::new(TimestampMillisecondArray::from(ends.iter().map(|e| e - 1).collect::<Vec<_>>())));
    Ok(Some(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| internal_err!("{e}"))?))
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
