//! One visual's numbers for every choice of its sheet's controls, found the cheapest of three
//! ways that stays exact:
//!
//! - **Through a cube** (sum, count, avg, min, max, and count distinct of integers, dates and
//!   times): one query per sheet, dataset and filter groups the source by every control's key
//!   and every dimension its visuals draw, with each measure's partial aggregates (a sum and a
//!   count for an average, the set of values for a count distinct). Each visual then
//!   aggregates the cube, joined to the controls' memberships. One scan of the source serves
//!   every such visual on the sheet; the cube has at most as many rows as the source and in
//!   practice a few thousand.
//! - **By value** (other count distincts, median, percentiles under at most three dropdowns or `=`
//!   sliders): each choice is one value or "all", so one grouped query per set of those
//!   controls left at "all" gives every frame, with no join.
//! - **Through memberships** (the rest): the visual's rows joined to each control's membership
//!   table and grouped by the choices too, so a row is counted in every choice that holds it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::{Array, Decimal128Array, Float64Array, Int64Array, RecordBatch};
use arrow_schema::DataType;
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use serde_json::{Value, json};

use super::{BuiltVisual, Frame, MAX_POINTS, Membership, Row, Source, at_line, json_values, located_err, mixed_radix, quote, rows_of, settle, shape};
use crate::dashboards::Dashboards;
use crate::dashboards::spec::{Agg, Located, Measure, Visual, VisualKind};
use crate::error::Result;
use crate::query::distinct_set;
use crate::service_err;

/// At most this many controls are read "by value" (one query per subset of them at "all").
const MAX_BY_VALUE_CONTROLS: usize = 3;

/// A sheet control over the visual's dataset: its index on the sheet, its membership table
/// and how many choices it has.
pub(super) struct Applying<'a> {
    pub index: usize,
    pub membership: &'a Membership,
    pub choices: usize,
}

/// A visual's query, planned: its fields checked, a histogram's bins found.
pub(super) struct Plan<'a> {
    pub visual: &'a Visual,
    pub source: Arc<Source>,
    pub dims: Vec<String>,
    pub dim_exprs: Vec<String>,
    pub bins: Option<(f64, f64)>,
    pub measures: Vec<&'a Located<Measure>>,
    /// Each measure's field as SQL; none for count(*).
    pub fields: Vec<Option<String>>,
    /// Whether each measure's field can go into a distinct set (for a count distinct).
    pub settable: Vec<bool>,
    /// The grouping sets, as indices into `dims`: every dimension, or a pivot's subtotals.
    pub sets: Vec<Vec<usize>>,
    /// The sheet's filter and the visual's, as SQL.
    pub filters: Vec<String>,
}

impl Plan<'_> {
    /// Whether every measure can be aggregated from partial aggregates (a cube).
    pub fn decomposable(&self) -> bool {
        self.measures.iter().zip(&self.settable).all(|(m, &settable)| match m.value.agg {
            Agg::Sum | Agg::Count | Agg::Avg | Agg::Min | Agg::Max => true,
            Agg::CountDistinct => settable,
            Agg::Median | Agg::Percentile => false,
        })
    }

    fn where_clause(&self) -> String {
        if self.filters.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.filters.iter().map(|f| format!("({f})")).collect::<Vec<_>>().join(" AND "))
        }
    }

    /// Measure `i`'s partial aggregates over the source: what a cube keeps of it.
    fn partials(&self, i: usize) -> Vec<String> {
        let f = self.fields[i].as_deref().unwrap_or("*");
        match self.measures[i].value.agg {
            Agg::Sum => vec![format!("SUM({f})")],
            Agg::Count => vec![format!("COUNT({f})")],
            Agg::Min => vec![format!("MIN({f})")],
            Agg::Max => vec![format!("MAX({f})")],
            Agg::Avg => vec![format!("SUM({f})"), format!("COUNT({f})")],
            Agg::CountDistinct => vec![format!("{}({f})", distinct_set::SET)],
            Agg::Median | Agg::Percentile => Vec::new(),
        }
    }

    /// The query's SELECT and GROUP BY over `from` (which joins any memberships): `choices`
    /// are (selected as, grouped by) pairs, `dims` the dimensions in `from`'s terms, and each
    /// measure an aggregate with, for an average read from a cube, the count beside it.
    fn query(&self, from: &str, choices: &[(String, String)], dims: &[String], measures: &[(String, Option<String>)]) -> String {
        let mut select: Vec<String> = choices.iter().map(|(s, _)| s.clone()).collect();
        select.extend(dims.iter().enumerate().map(|(i, d)| format!("{d} AS d{i}")));
        let grouped = self.sets.len() > 1;
        if grouped {
            select.extend(dims.iter().enumerate().map(|(i, d)| format!("GROUPING({d}) AS g{i}")));
        }
        for (i, (m, n)) in measures.iter().enumerate() {
            select.push(format!("{m} AS m{i}"));
            if let Some(n) = n {
                select.push(format!("{n} AS n{i}"));
            }
        }
        let mut sql = format!("SELECT {} FROM {from}", select.join(", "));
        let groups: Vec<String> = choices.iter().map(|(_, g)| g.clone()).collect();
        if grouped {
            let sets: Vec<String> =
                self.sets.iter().map(|set| format!("({})", groups.iter().cloned().chain(set.iter().map(|&i| dims[i].clone())).collect::<Vec<_>>().join(", "))).collect();
            sql.push_str(&format!(" GROUP BY GROUPING SETS ({})", sets.join(", ")));
        } else if !dims.is_empty() || !groups.is_empty() {
            sql.push_str(&format!(" GROUP BY {}", groups.iter().chain(dims).cloned().collect::<Vec<_>>().join(", ")));
        }
        sql
    }

    /// Adds a result's rows to their frames; `choice` gives each row's choice of control `k`
    /// (none: the row belongs to no frame).
    fn collect(&self, batches: &[RecordBatch], frames: &mut [Frame], radix: &[usize], choice: impl Fn(&RecordBatch, usize) -> Vec<Option<usize>>) {
        for batch in batches {
            let column = |name: &str| batch.column_by_name(name).map(|c| json_values(c.as_ref()));
            let choices: Vec<Vec<Option<usize>>> = (0..radix.len()).map(|k| choice(batch, k)).collect();
            let dim_values: Vec<Vec<Value>> = (0..self.dims.len()).map(|i| column(&format!("d{i}")).unwrap_or_default()).collect();
            let flags: Vec<Vec<Value>> = (0..self.dims.len()).map(|i| column(&format!("g{i}")).unwrap_or_default()).collect();
            let measure_values: Vec<Vec<Value>> = (0..self.measures.len())
                .map(|i| {
                    let values = match (batch.column_by_name(&format!("m{i}")), batch.column_by_name(&format!("n{i}"))) {
                        (Some(sum), Some(count)) => average(sum.as_ref(), count.as_ref()),
                        (Some(m), None) => json_values(m.as_ref()),
                        _ => Vec::new(),
                    };
                    values.iter().map(settle).collect()
                })
                .collect();
            'rows: for r in 0..batch.num_rows() {
                let mut row_choices = Vec::with_capacity(radix.len());
                for k in &choices {
                    match k.get(r).copied().flatten() {
                        Some(c) => row_choices.push(c),
                        None => continue 'rows,
                    }
                }
                let flag = |values: &[Value]| values.get(r).and_then(Value::as_f64).is_some_and(|v| v != 0.0);
                let totals: Vec<bool> = flags.iter().map(|f| flag(f)).collect();
                let totals = if totals.len() == self.dims.len() { totals } else { vec![false; self.dims.len()] };
                let row = Row {
                    dims: dim_values.iter().zip(&totals).map(|(v, &total)| if total { Value::Null } else { v[r].clone() }).collect(),
                    totals,
                    measures: measure_values.iter().map(|v| v.get(r).cloned().unwrap_or(Value::Null)).collect(),
                };
                if let Some(frame) = frames.get_mut(mixed_radix(row_choices.into_iter(), radix)) {
                    frame.rows.push(row);
                }
            }
        }
    }
}

/// An average from summed sums and counts, as the engine's AVG gives it: a decimal's to four
/// more places, truncated; anything else as a double.
fn average(sum: &dyn Array, count: &dyn Array) -> Vec<Value> {
    let counts: Vec<Option<i64>> = match datafusion::arrow::compute::cast(count, &DataType::Int64) {
        Ok(cast) => cast.as_any().downcast_ref::<Int64Array>().map(|a| a.iter().collect()).unwrap_or_default(),
        Err(_) => return vec![Value::Null; sum.len()],
    };
    let number = |v: f64| serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number);
    if let (DataType::Decimal128(_, scale), Some(sums)) = (sum.data_type(), sum.as_any().downcast_ref::<Decimal128Array>()) {
        let scale = i32::from(*scale);
        let target = (scale + 4).min(38);
        let mul = 10i128.pow((target - scale).max(0) as u32);
        return sums
            .iter()
            .zip(&counts)
            .map(|(s, n)| match (s, n) {
                (Some(s), Some(n)) if *n > 0 => s.checked_mul(mul).map_or(Value::Null, |v| number((v / i128::from(*n)) as f64 / 10f64.powi(target))),
                _ => Value::Null,
            })
            .collect();
    }
    let sums: Vec<Option<f64>> = match datafusion::arrow::compute::cast(sum, &DataType::Float64) {
        Ok(cast) => cast.as_any().downcast_ref::<Float64Array>().map(|a| a.iter().collect()).unwrap_or_default(),
        Err(_) => return vec![Value::Null; sum.len()],
    };
    sums.iter()
        .zip(&counts)
        .map(|(s, n)| match (s, n) {
            (Some(s), Some(n)) if *n > 0 => number(s / *n as f64),
            _ => Value::Null,
        })
        .collect()
}

/// A measure as one SQL aggregate over the source.
fn aggregate(m: &Measure, f: Option<&str>) -> String {
    let Some(f) = f else { return "COUNT(*)".to_string() };
    match m.agg {
        Agg::Sum => format!("SUM({f})"),
        Agg::Count => format!("COUNT({f})"),
        Agg::CountDistinct => format!("COUNT(DISTINCT {f})"),
        Agg::Avg => format!("AVG({f})"),
        Agg::Min => format!("MIN({f})"),
        Agg::Max => format!("MAX({f})"),
        Agg::Median => format!("median({f})"),
        Agg::Percentile => format!("percentile_cont({}) WITHIN GROUP (ORDER BY {f})", m.percentile.unwrap_or(50.0) / 100.0),
    }
}

/// A measure's field as SQL, checked against the dataset (numbers for sum, avg, median and
/// percentiles); none for count(*).
fn measure_field(m: &Located<Measure>, source: &Source, dataset: &str) -> Result<Option<(String, DataType)>> {
    let Some(field) = &m.value.field else { return Ok(None) };
    let (name, data_type) = source.field(&Located { value: field.clone(), line: m.line }, dataset)?;
    if m.value.agg.numeric() && !data_type.is_numeric() {
        return Err(located_err(
            m.line,
            format!("{}: {name} is {}, and {:?} needs numbers", m.value.label, crate::catalog::types::glue_type(&data_type), m.value.agg),
        )
        .with_hint("count, count_distinct, min and max take any field; cast it in a calculated field to sum it"));
    }
    Ok(Some((quote(&name), data_type)))
}

/// A sheet's visuals' shared aggregate over one dataset and filter: grouped by every control's
/// key (`k0`, `k1`, …) and every dimension (`e0`, …), with every partial aggregate (`p0`, …).
pub(super) struct Cube {
    name: String,
    table: Arc<MemTable>,
    dims: HashMap<String, String>,
    parts: HashMap<String, String>,
}

/// A table of the query's own (`lakebook_run.frames."<name>"`).
pub(super) fn run_table(name: &str) -> String {
    format!("{}.{}.{}", crate::query::RUN_CATALOG, crate::query::RUN_SCHEMA, quote(name))
}

impl Dashboards {
    pub(super) async fn plan_visual<'a>(&self, visual: &'a Visual, source: Arc<Source>, sheet_filter: Option<&Located<String>>) -> Result<Plan<'a>> {
        let dataset = visual.dataset.value.as_str();
        let mut dims = Vec::new();
        for d in &visual.dims {
            dims.push(source.field(d, dataset)?.0);
        }
        let dim_exprs = dims.iter().map(|d| quote(d)).collect();
        let mut measures: Vec<&Located<Measure>> = visual.measures.iter().collect();
        measures.extend(visual.target.iter());
        let (mut fields, mut settable) = (Vec::new(), Vec::new());
        for m in &measures {
            let field = measure_field(m, &source, dataset)?;
            settable.push(field.as_ref().is_some_and(|(_, t)| distinct_set::supports(t)));
            fields.push(field.map(|(f, _)| f));
        }
        // The grouping sets: every dimension, or for a pivot with subtotals each prefix of
        // its rows crossed with each prefix of its columns.
        let sets: Vec<Vec<usize>> = if visual.kind == VisualKind::Pivot && visual.subtotals {
            let (rows, columns) = (visual.pivot_rows, dims.len() - visual.pivot_rows);
            let mut sets = Vec::new();
            for r in (0..=rows).rev() {
                for c in (0..=columns).rev() {
                    sets.push((0..r).chain(rows..rows + c).collect());
                }
            }
            sets
        } else {
            vec![(0..dims.len()).collect()]
        };
        let filters = sheet_filter.iter().copied().chain(&visual.filter).map(|f| f.value.clone()).collect();
        let mut plan = Plan { visual, source, dims, dim_exprs, bins: None, measures, fields, settable, sets, filters };
        // A histogram's bins span the field's range over every control value, so a choice
        // changes the bars' heights and never their edges.
        if let Some((field, count)) = &visual.histogram {
            let (name, data_type) = plan.source.field(field, dataset)?;
            if !data_type.is_numeric() {
                return Err(located_err(field.line, format!("a histogram bins numbers, and {name} is {}", crate::catalog::types::glue_type(&data_type))));
            }
            let f = quote(&name);
            let range_sql = format!("SELECT CAST(MIN({f}) AS DOUBLE) AS lo, CAST(MAX({f}) AS DOUBLE) AS hi FROM {}{}", plan.source.from, plan.where_clause());
            let (_, batches) = self.sql.collect_over(&range_sql, &plan.source.database, plan.source.tables.clone()).await.map_err(|e| at_line(e, visual.line))?;
            let row = rows_of(&batches).into_iter().next().unwrap_or_default();
            let (lo, hi) = (row.first().and_then(Value::as_f64).unwrap_or(0.0), row.get(1).and_then(Value::as_f64).unwrap_or(0.0));
            let width = if hi > lo { (hi - lo) / *count as f64 } else { 1.0 };
            plan.dims.push("bin".to_string());
            plan.dim_exprs.push(format!("LEAST(CAST(FLOOR((CAST({f} AS DOUBLE) - ({lo:?})) / ({width:?})) AS BIGINT), {})", count - 1));
            plan.bins = Some((lo, width));
        }
        Ok(plan)
    }

    /// The cube of `plans` (decomposable, over one dataset and filter) under `controls`.
    pub(super) async fn cube(&self, name: &str, plans: &[&Plan<'_>], controls: &[Applying<'_>]) -> Result<Cube> {
        let first = plans.first().ok_or_else(|| service_err!(InternalFailure, "a cube of no visuals"))?;
        let (mut select, mut group): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
        let add_group = |expr: &str, group: &mut Vec<String>| {
            if !group.iter().any(|g| g == expr) {
                group.push(expr.to_string());
            }
        };
        for (k, control) in controls.iter().enumerate() {
            select.push(format!("{} AS \"k{k}\"", control.membership.key));
            add_group(&control.membership.key, &mut group);
        }
        let (mut dims, mut parts) = (HashMap::new(), HashMap::new());
        for plan in plans {
            for e in &plan.dim_exprs {
                if !dims.contains_key(e) {
                    let column = format!("e{}", dims.len());
                    select.push(format!("{e} AS \"{column}\""));
                    add_group(e, &mut group);
                    dims.insert(e.clone(), column);
                }
            }
            for i in 0..plan.measures.len() {
                for p in plan.partials(i) {
                    if !parts.contains_key(&p) {
                        let column = format!("p{}", parts.len());
                        select.push(format!("{p} AS \"{column}\""));
                        parts.insert(p, column);
                    }
                }
            }
        }
        let mut sql = format!("SELECT {} FROM {}{}", select.join(", "), first.source.from, first.where_clause());
        if !group.is_empty() {
            sql.push_str(&format!(" GROUP BY {}", group.join(", ")));
        }
        let (schema, batches) = self.sql.collect_over(&sql, &first.source.database, first.source.tables.clone()).await.map_err(|e| at_line(e, first.visual.line))?;
        let table = MemTable::try_new(schema, vec![batches]).map_err(|e| service_err!(InternalFailure, "{e}"))?;
        Ok(Cube { name: name.to_string(), table: Arc::new(table), dims, parts })
    }

    pub(super) async fn run_visual(&self, plan: &Plan<'_>, controls: &[Applying<'_>], cube: Option<&Cube>) -> Result<BuiltVisual> {
        let radix: Vec<usize> = controls.iter().map(|c| c.choices).collect();
        let mut frames = vec![Frame::default(); radix.iter().product()];
        let source = &plan.source;
        let by_value = !controls.is_empty() && controls.len() <= MAX_BY_VALUE_CONTROLS && controls.iter().all(|c| c.membership.by_value.is_some());
        if cube.is_none() && by_value {
            // One query per set of controls at "all" (bit k set: control k at "all").
            let dims = &plan.dim_exprs;
            let measures: Vec<(String, Option<String>)> = plan.measures.iter().zip(&plan.fields).map(|(m, f)| (aggregate(&m.value, f.as_deref()), None)).collect();
            for all in 0..(1usize << controls.len()) {
                let keyed: Vec<usize> = (0..controls.len()).filter(|k| all & (1 << k) == 0).collect();
                let choices: Vec<(String, String)> = keyed.iter().map(|&k| (format!("{} AS r{k}", controls[k].membership.key), controls[k].membership.key.clone())).collect();
                let sql = plan.query(&format!("{}{}", source.from, plan.where_clause()), &choices, dims, &measures);
                let (_, batches) = self.sql.collect_over(&sql, &source.database, source.tables.clone()).await.map_err(|e| at_line(e, plan.visual.line))?;
                plan.collect(&batches, &mut frames, &radix, |batch, k| {
                    let Some(values) = batch.column_by_name(&format!("r{k}")) else { return vec![Some(0); batch.num_rows()] };
                    let map = controls[k].membership.by_value.as_ref();
                    json_values(values.as_ref()).iter().map(|v| map.and_then(|m| m.get(&v.to_string()).copied())).collect()
                });
            }
        } else {
            let mut tables: BTreeMap<String, Arc<dyn TableProvider>>;
            let (mut from, keys, dims, measures): (String, Vec<String>, Vec<String>, Vec<(String, Option<String>)>) = match cube {
                Some(cube) => {
                    tables = BTreeMap::from([(cube.name.clone(), cube.table.clone() as Arc<dyn TableProvider>)]);
                    let part = |p: &str| cube.parts.get(p).map(|c| format!("ds.{}", quote(c))).unwrap_or_else(|| "NULL".to_string());
                    let measures = (0..plan.measures.len())
                        .map(|i| {
                            let parts = plan.partials(i);
                            let combine = match plan.measures[i].value.agg {
                                Agg::Min => "MIN",
                                Agg::Max => "MAX",
                                Agg::CountDistinct => distinct_set::COUNT,
                                _ => "SUM",
                            };
                            (format!("{combine}({})", part(&parts[0])), parts.get(1).map(|c| format!("SUM({})", part(c))))
                        })
                        .collect();
                    (
                        format!("{} AS ds", run_table(&cube.name)),
                        (0..controls.len()).map(|k| format!("ds.\"k{k}\"")).collect(),
                        plan.dim_exprs.iter().map(|e| cube.dims.get(e).map(|c| format!("ds.{}", quote(c))).unwrap_or_else(|| e.clone())).collect(),
                        measures,
                    )
                }
                None => {
                    tables = source.tables.clone();
                    let from = if controls.is_empty() { format!("{}{}", source.from, plan.where_clause()) } else { format!("(SELECT * FROM {}{}) AS ds", source.from, plan.where_clause()) };
                    let measures = plan.measures.iter().zip(&plan.fields).map(|(m, f)| (aggregate(&m.value, f.as_deref()), None)).collect();
                    (from, controls.iter().map(|c| c.membership.key.clone()).collect(), plan.dim_exprs.clone(), measures)
                }
            };
            for (k, (control, key)) in controls.iter().zip(&keys).enumerate() {
                let name = format!("lb_control_{}", control.index);
                from.push_str(&format!(" JOIN {} AS m{k} ON {key} IS NOT DISTINCT FROM m{k}.\"__value\"", run_table(&name)));
                tables.insert(name, control.membership.table.clone() as Arc<dyn TableProvider>);
            }
            let choices: Vec<(String, String)> = (0..controls.len()).map(|k| (format!("m{k}.\"__choice\" AS c{k}"), format!("m{k}.\"__choice\""))).collect();
            let sql = plan.query(&from, &choices, &dims, &measures);
            let (_, batches) = self.sql.collect_over(&sql, &source.database, tables).await.map_err(|e| at_line(e, plan.visual.line))?;
            plan.collect(&batches, &mut frames, &radix, |batch, k| match batch.column_by_name(&format!("c{k}")) {
                Some(c) => json_values(c.as_ref()).iter().map(|v| v.as_u64().map(|c| c as usize)).collect(),
                None => vec![None; batch.num_rows()],
            });
        }
        finish(plan, controls, radix, frames)
    }
}

/// Zero counts for a KPI over an empty choice, bins' starts, each frame sorted and cut.
fn finish(plan: &Plan<'_>, controls: &[Applying<'_>], radix: Vec<usize>, mut frames: Vec<Frame>) -> Result<BuiltVisual> {
    let visual = plan.visual;
    if plan.dims.is_empty() {
        for frame in frames.iter_mut().filter(|f| f.rows.is_empty()) {
            let measures = plan.measures.iter().map(|m| if matches!(m.value.agg, Agg::Count | Agg::CountDistinct) { json!(0) } else { Value::Null }).collect();
            frame.rows.push(Row { dims: Vec::new(), totals: Vec::new(), measures });
        }
    }
    if let Some((lo, width)) = plan.bins {
        for frame in &mut frames {
            frame.rows.retain(|r| !r.dims[0].is_null());
            for row in &mut frame.rows {
                let i = row.dims[0].as_f64().unwrap_or(0.0);
                row.dims[0] = serde_json::Number::from_f64(lo + i * width).map(Value::Number).unwrap_or(Value::Null);
            }
        }
    }
    for frame in &mut frames {
        shape(frame, visual);
        if frame.rows.len() > MAX_POINTS {
            return Err(located_err(visual.line, format!("the visual {:?} has {} points; a visual draws at most {MAX_POINTS}", visual.title, frame.rows.len()))
                .with_hint("set `top`, filter it, or group by a field with fewer values"));
        }
    }
    Ok(BuiltVisual {
        kind: visual.kind,
        title: visual.title.clone(),
        span: visual.span,
        dims: plan.dims.clone(),
        pivot_rows: visual.pivot_rows,
        measures: plan.measures.iter().map(|m| m.value.label.clone()).collect(),
        has_target: visual.target.is_some(),
        horizontal: visual.horizontal,
        stacked: visual.stacked,
        donut: visual.donut,
        subtotals: visual.subtotals,
        controls: controls.iter().map(|c| c.index).collect(),
        radix,
        line_measures: visual.line_measures,
        bin_width: plan.bins.map(|(_, width)| width),
        frames,
    })
}
