//! Exact count distinct that combines across groups: `lakebook_distinct_set(x)` is the set of
//! an integer, date or time column's values in a group (a serialized Roaring bitmap of their
//! 64-bit values), and `lakebook_distinct_count(set)` the number of values in the union of
//! such sets. A dashboard's cube keeps one set per group, so a choice of its controls — a
//! union of groups — counts its distinct values exactly without scanning the rows again.
//! Registered only for the engine's own queries (a dashboard's), not for users' SQL.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, BinaryArray, BooleanArray, Int64Array};
use arrow_schema::{DataType, Field, FieldRef};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility};
use datafusion::prelude::SessionContext;
use roaring::RoaringTreemap;

pub const SET: &str = "lakebook_distinct_set";
pub const COUNT: &str = "lakebook_distinct_count";

/// Adds both functions to a query's context.
pub fn register(ctx: &SessionContext) {
    ctx.register_udaf(AggregateUDF::from(Distinct::new(SET)));
    ctx.register_udaf(AggregateUDF::from(Distinct::new(COUNT)));
}

/// Whether a column's values go into a set: those with an exact 64-bit integer form.
pub fn supports(data_type: &DataType) -> bool {
    data_type.is_integer() || matches!(data_type, DataType::Date32 | DataType::Date64 | DataType::Timestamp(..))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Distinct {
    name: &'static str,
    signature: Signature,
}

impl Distinct {
    fn new(name: &'static str) -> Self {
        Self { name, signature: Signature::any(1, Volatility::Immutable) }
    }

    fn counts(&self) -> bool {
        self.name == COUNT
    }
}

impl AggregateUDFImpl for Distinct {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args.first() {
            Some(DataType::Binary) if self.counts() => Ok(DataType::Int64),
            Some(t) if !self.counts() && supports(t) => Ok(DataType::Binary),
            Some(t) => Err(DataFusionError::Plan(format!("{} does not take {t}", self.name))),
            None => Err(DataFusionError::Plan(format!("{} takes one argument", self.name))),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(format!("{}[set]", args.name), DataType::Binary, true))])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(SetAccumulator { set: RoaringTreemap::new(), takes_sets: self.counts(), counts: self.counts() }))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(SetGroups { sets: Vec::new(), values: 0, takes_sets: self.counts(), counts: self.counts() }))
    }
}

fn serialize(set: &RoaringTreemap) -> Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(set.serialized_size());
    set.serialize_into(&mut bytes).map_err(|e| DataFusionError::External(Box::new(e)))?;
    Ok(bytes)
}

fn deserialize(bytes: &[u8]) -> Result<RoaringTreemap> {
    RoaringTreemap::deserialize_unchecked_from(bytes).map_err(|e| DataFusionError::External(Box::new(e)))
}

fn binary_sets(sets: &ArrayRef) -> Result<&BinaryArray> {
    sets.as_binary_opt::<i32>().ok_or_else(|| DataFusionError::Internal(format!("{COUNT} takes sets, not {}", sets.data_type())))
}

/// One set per group, each row's value inserted into its group's set: the aggregate in a
/// GROUP BY, with many groups per batch.
#[derive(Debug)]
struct SetGroups {
    sets: Vec<RoaringTreemap>,
    /// Values inserted, for the memory estimate.
    values: usize,
    takes_sets: bool,
    counts: bool,
}

impl SetGroups {
    fn union(&mut self, sets: &ArrayRef, group_indices: &[usize], filter: Option<&BooleanArray>) -> Result<()> {
        let sets = binary_sets(sets)?;
        for (row, &group) in group_indices.iter().enumerate() {
            if sets.is_null(row) || filter.is_some_and(|f| !f.is_valid(row) || !f.value(row)) {
                continue;
            }
            let set = deserialize(sets.value(row))?;
            self.values += set.len() as usize;
            self.sets[group] |= set;
        }
        Ok(())
    }
}

impl GroupsAccumulator for SetGroups {
    fn update_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], opt_filter: Option<&BooleanArray>, total_num_groups: usize) -> Result<()> {
        self.sets.resize_with(total_num_groups, RoaringTreemap::new);
        let Some(values) = values.first() else { return Ok(()) };
        if self.takes_sets {
            return self.union(values, group_indices, opt_filter);
        }
        let ints = datafusion::arrow::compute::cast(values, &DataType::Int64)?;
        let ints: &Int64Array = ints.as_primitive::<Int64Type>();
        for (row, &group) in group_indices.iter().enumerate() {
            if ints.is_null(row) || opt_filter.is_some_and(|f| !f.is_valid(row) || !f.value(row)) {
                continue;
            }
            if self.sets[group].insert(ints.value(row) as u64) {
                self.values += 1;
            }
        }
        Ok(())
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        self.sets.resize_with(total_num_groups, RoaringTreemap::new);
        match values.first() {
            Some(sets) => self.union(sets, group_indices, None),
            None => Ok(()),
        }
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let sets = emit_to.take_needed(&mut self.sets);
        if self.counts {
            return Ok(Arc::new(Int64Array::from_iter_values(sets.iter().map(|s| s.len() as i64))));
        }
        let bytes: Vec<Vec<u8>> = sets.iter().map(serialize).collect::<Result<_>>()?;
        Ok(Arc::new(BinaryArray::from_iter_values(bytes)))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let sets = emit_to.take_needed(&mut self.sets);
        let bytes: Vec<Vec<u8>> = sets.iter().map(serialize).collect::<Result<_>>()?;
        Ok(vec![Arc::new(BinaryArray::from_iter_values(bytes))])
    }

    /// Each row as its own group: a set of its one value (or, given sets, the set).
    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let Some(values) = values.first() else { return Ok(Vec::new()) };
        let mut groups = SetGroups { sets: Vec::new(), values: 0, takes_sets: self.takes_sets, counts: false };
        let rows: Vec<usize> = (0..values.len()).collect();
        groups.update_batch(std::slice::from_ref(values), &rows, opt_filter, values.len())?;
        groups.state(EmitTo::All)
    }

    fn size(&self) -> usize {
        // A value takes about two bytes in a bitmap's array container, at most.
        std::mem::size_of_val(self) + self.sets.capacity() * std::mem::size_of::<RoaringTreemap>() + self.values * 2
    }
}

#[derive(Debug)]
struct SetAccumulator {
    set: RoaringTreemap,
    /// Whether its input is sets (to union) rather than values.
    takes_sets: bool,
    /// Whether it evaluates to the count rather than the set.
    counts: bool,
}

impl SetAccumulator {
    fn serialized(&self) -> Result<Vec<u8>> {
        serialize(&self.set)
    }

    fn union(&mut self, sets: &ArrayRef) -> Result<()> {
        for bytes in binary_sets(sets)?.iter().flatten() {
            self.set |= deserialize(bytes)?;
        }
        Ok(())
    }
}

impl Accumulator for SetAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let Some(values) = values.first() else { return Ok(()) };
        if self.takes_sets {
            return self.union(values);
        }
        let ints = datafusion::arrow::compute::cast(values, &DataType::Int64)?;
        let mut sorted: Vec<u64> = ints.as_primitive::<Int64Type>().iter().flatten().map(|v| v as u64).collect();
        sorted.sort_unstable();
        sorted.dedup();
        // Built from sorted values a bitmap fills container by container.
        self.set |= RoaringTreemap::from_sorted_iter(sorted).map_err(|e| DataFusionError::Internal(e.to_string()))?;
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        match states.first() {
            Some(sets) => self.union(sets),
            None => Ok(()),
        }
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(Some(self.serialized()?))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.counts { Ok(ScalarValue::Int64(Some(self.set.len() as i64))) } else { Ok(ScalarValue::Binary(Some(self.serialized()?))) }
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.set.serialized_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_count_of_a_union_of_sets_is_count_distinct_over_their_rows() {
        let ctx = SessionContext::new();
        register(&ctx);
        let sql = "WITH t(g, k, d) AS (VALUES (1, -5, DATE '2026-01-01'), (1, 7, DATE '2026-01-02'), (2, 7, DATE '2026-01-01'), (2, NULL, NULL), (3, 9000000000, DATE '2026-03-01')), \
                   sets AS (SELECT g, lakebook_distinct_set(k) AS s, lakebook_distinct_set(d) AS ds FROM t GROUP BY g) \
                   SELECT lakebook_distinct_count(s), lakebook_distinct_count(ds), (SELECT count(DISTINCT k) FROM t), (SELECT count(DISTINCT d) FROM t) FROM sets";
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let row: Vec<i64> = batches[0].columns().iter().map(|c| c.as_primitive::<Int64Type>().value(0)).collect();
        assert_eq!(row, vec![3, 3, 3, 3]);
        // Grouped (many groups per batch) and by group of sets.
        let grouped = "WITH t(g, h, k) AS (SELECT v % 3, v % 5, v % 17 FROM generate_series(1, 5000) AS s(v)), \
                       sets AS (SELECT g, h, lakebook_distinct_set(k) AS s FROM t GROUP BY g, h) \
                       SELECT g, lakebook_distinct_count(s), (SELECT count(DISTINCT k) FROM t WHERE t.g = sets.g) FROM sets GROUP BY g ORDER BY g";
        let batches = ctx.sql(grouped).await.unwrap().collect().await.unwrap();
        let rows = datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
        let counts: Vec<(i64, i64)> = batches.iter().flat_map(|b| (0..b.num_rows()).map(|r| (b.column(1).as_primitive::<Int64Type>().value(r), b.column(2).as_primitive::<Int64Type>().value(r)))).collect();
        assert_eq!(counts.len(), 3, "{rows}");
        assert!(counts.iter().all(|(a, b)| a == b && *a == 17), "{rows}");
        let err = ctx.sql("SELECT lakebook_distinct_set(x) FROM (VALUES ('a')) AS t(x)").await.unwrap_err();
        assert!(err.to_string().contains("does not take Utf8"), "{err}");
    }
}
