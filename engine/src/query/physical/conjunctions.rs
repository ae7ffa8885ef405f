//! A filter's `a AND b AND c …` evaluated term by term on the rows still selected.
//!
//! DataFusion evaluates a chain of ANDs pairwise: once the left side selects under a fifth
//! of the rows, it filters the whole batch (every column) down to those rows, evaluates the
//! right side there and scatters the answer back to full length, value by value — at each
//! level of the chain. TPC-H q6's five range terms thus filtered and scattered its batches
//! three times, a fifth of the query's time. Here the terms are taken in order: while more
//! than a quarter of the rows remain, a term is evaluated on the whole batch and its answer
//! ANDed in bitwise; after that, only the columns the remaining terms read are filtered down
//! to the remaining rows once, each later term narrows those, and one pass sets the
//! surviving rows' bits. A row passes when every term is true (a NULL term drops it, as a
//! filter does).

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, BooleanArray, RecordBatch, UInt32Array};
use arrow_schema::{FieldRef, Schema, SchemaRef};
use datafusion::arrow::buffer::{BooleanBuffer, MutableBuffer};
use datafusion::arrow::compute::{filter, filter_record_batch, prep_null_mask_filter};
use datafusion::arrow::util::bit_util;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, Column};
use datafusion::physical_expr::utils::{collect_columns, split_conjunction};

/// Past this share of the rows still selected, a term is evaluated on the whole batch.
const WHOLE_BATCH_SHARE: usize = 4;

/// The terms of an AND chain, and for each term after the first, the terms from there on
/// rewritten to the columns they read (the narrowed batches carry only those).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Conjunction {
    /// The filter's input.
    schema: SchemaRef,
    terms: Vec<Arc<dyn PhysicalExpr>>,
    tails: Vec<Tail>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Tail {
    /// The input columns the terms read, in the narrowed batch's order.
    columns: Vec<usize>,
    schema: SchemaRef,
    terms: Vec<Arc<dyn PhysicalExpr>>,
}

impl Conjunction {
    /// `predicate` as a `Conjunction` when it is an AND of two terms or more.
    pub fn of(predicate: &Arc<dyn PhysicalExpr>, schema: &SchemaRef) -> Result<Option<Self>> {
        let is_and = predicate.downcast_ref::<BinaryExpr>().is_some_and(|b| *b.op() == Operator::And);
        if !is_and {
            return Ok(None);
        }
        let terms: Vec<Arc<dyn PhysicalExpr>> = split_conjunction(predicate).into_iter().cloned().collect();
        Self::new(terms, schema).map(Some)
    }

    fn new(terms: Vec<Arc<dyn PhysicalExpr>>, schema: &SchemaRef) -> Result<Self> {
        let mut tails = Vec::new();
        for from in 1..terms.len() {
            let mut columns: Vec<usize> = terms[from..].iter().flat_map(collect_columns).map(|c| c.index()).collect();
            columns.sort_unstable();
            columns.dedup();
            let fields: Vec<FieldRef> = columns.iter().map(|i| Arc::new(schema.field(*i).clone())).collect();
            let narrowed = Arc::new(Schema::new(fields));
            let terms = terms[from..]
                .iter()
                .map(|t| {
                    Arc::clone(t)
                        .transform_down(|e| {
                            Ok(match e.downcast_ref::<Column>() {
                                Some(c) => {
                                    let at = columns.binary_search(&c.index()).map_err(|_| datafusion::error::DataFusionError::Internal("a term's column was not collected".into()))?;
                                    Transformed::yes(Arc::new(Column::new(c.name(), at)) as Arc<dyn PhysicalExpr>)
                                }
                                None => Transformed::no(e),
                            })
                        })
                        .data()
                })
                .collect::<Result<_>>()?;
            tails.push(Tail { columns, schema: narrowed, terms });
        }
        Ok(Self { schema: Arc::clone(schema), terms, tails })
    }

    /// The AND chain the terms came from, as DataFusion would build it (for display and type).
    fn chain(&self) -> BinaryExpr {
        let mut terms = self.terms.iter().cloned();
        let (Some(first), Some(second)) = (terms.next(), terms.next()) else { unreachable!("a conjunction has two terms or more") };
        terms.fold(BinaryExpr::new(first, Operator::And, second), |chain, t| BinaryExpr::new(Arc::new(chain), Operator::And, t))
    }
}

impl fmt::Display for Conjunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.chain().fmt(f)
    }
}

/// Where a term is true: its NULLs count as false.
fn truthy(value: ColumnarValue, rows: usize) -> Result<BooleanBuffer> {
    Ok(match value {
        ColumnarValue::Array(array) => {
            let array = array.as_boolean_opt().ok_or_else(|| datafusion::error::DataFusionError::Internal(format!("a filter term returned {}", array.data_type())))?;
            match array.null_count() {
                0 => array.values().clone(),
                _ => prep_null_mask_filter(array).values().clone(),
            }
        }
        ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))) => BooleanBuffer::new_set(rows),
        ColumnarValue::Scalar(_) => BooleanBuffer::new_unset(rows),
    })
}

impl PhysicalExpr for Conjunction {
    fn return_field(&self, input_schema: &Schema) -> Result<FieldRef> {
        self.chain().return_field(input_schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        let rows = batch.num_rows();
        let mut selected = truthy(self.terms[0].evaluate(batch)?, rows)?;
        let mut count = selected.count_set_bits();
        let mut next = 1;
        while next < self.terms.len() && count * WHOLE_BATCH_SHARE > rows {
            selected = &selected & &truthy(self.terms[next].evaluate(batch)?, rows)?;
            count = selected.count_set_bits();
            next += 1;
        }
        if next == self.terms.len() || count == 0 {
            return Ok(ColumnarValue::Array(Arc::new(BooleanArray::new(selected, None))));
        }
        // The rest on the selected rows of the columns they read.
        let tail = &self.tails[next - 1];
        let mask = BooleanArray::new(selected, None);
        let columns = tail.columns.iter().map(|i| Arc::clone(batch.column(*i))).collect();
        // (the row count is given: the remaining terms may read no column, as `random() < 0.5`)
        let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(rows));
        let mut narrowed = filter_record_batch(&RecordBatch::try_new_with_options(Arc::clone(&tail.schema), columns, &options)?, &mask)?;
        let mut positions = UInt32Array::from_iter_values(mask.values().set_indices().map(|i| i as u32));
        for (k, term) in tail.terms.iter().enumerate() {
            let keep = BooleanArray::new(truthy(term.evaluate(&narrowed)?, narrowed.num_rows())?, None);
            if keep.true_count() == keep.len() {
                continue;
            }
            positions = filter(&positions, &keep)?.as_primitive().clone();
            if positions.is_empty() {
                break;
            }
            if k + 1 < tail.terms.len() {
                narrowed = filter_record_batch(&narrowed, &keep)?;
            }
        }
        let mut bits = MutableBuffer::from_len_zeroed(rows.div_ceil(8));
        for at in positions.values() {
            bit_util::set_bit(bits.as_slice_mut(), *at as usize);
        }
        Ok(ColumnarValue::Array(Arc::new(BooleanArray::new(BooleanBuffer::new(bits.into(), 0, rows), None))))
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        self.terms.iter().collect()
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn PhysicalExpr>>) -> Result<Arc<dyn PhysicalExpr>> {
        Ok(Arc::new(Self::new(children, &self.schema)?))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.chain().fmt_sql(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Int64Array;
    use arrow_schema::{DataType, Field};
    use datafusion::physical_expr::expressions::{Literal, col};

    fn compare(column: &str, op: Operator, value: i64, schema: &Schema) -> Arc<dyn PhysicalExpr> {
        Arc::new(BinaryExpr::new(col(column, schema).unwrap(), op, Arc::new(Literal::new(ScalarValue::Int64(Some(value))))))
    }

    /// Term by term on the remaining rows gives the rows the AND chain keeps (true), at
    /// every selectivity, with NULLs in the columns, whichever term narrows first.
    #[test]
    fn a_conjunction_keeps_the_rows_the_and_chain_keeps() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true), Field::new("b", DataType::Int64, true), Field::new("c", DataType::Int64, true)]));
        let mut random = crate::streams::generator::rng(Some(11));
        let mut next = move || rand::Rng::random::<u64>(&mut random);
        let mut narrowed = 0;
        for round in 0..60 {
            let rows = 1 + (next() % 3000) as usize;
            let mut column = |nulls: bool| -> Int64Array { (0..rows).map(|_| (!nulls || next() % 9 != 0).then(|| (next() % 100) as i64)).collect() };
            let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(column(round % 2 == 0)), Arc::new(column(false)), Arc::new(column(round % 3 == 0))]).unwrap();
            let cut = |n: u64| (n % 101) as i64;
            let terms = vec![
                compare("a", Operator::Lt, cut(next()), &schema),
                compare("b", Operator::GtEq, cut(next()), &schema),
                compare("c", Operator::NotEq, cut(next()), &schema),
                compare("a", Operator::Gt, cut(next()) / 4, &schema),
            ];
            let chain: Arc<dyn PhysicalExpr> = Arc::new(Conjunction::new(terms.clone(), &schema).unwrap().chain());
            let expected = truthy(chain.evaluate(&batch).unwrap(), rows).unwrap();
            let conjunction = Conjunction::of(&chain, &schema).unwrap().expect("an AND chain");
            assert_eq!(conjunction.terms.len(), 4);
            assert_eq!(conjunction.to_string(), chain.to_string());
            let got = conjunction.evaluate(&batch).unwrap().into_array(rows).unwrap();
            assert_eq!(got.null_count(), 0);
            assert_eq!(got.as_boolean().values(), &expected, "round {round}");
            narrowed += usize::from(truthy(terms[0].evaluate(&batch).unwrap(), rows).unwrap().count_set_bits() * WHOLE_BATCH_SHARE <= rows);
        }
        // both ways were taken
        assert!((5..55).contains(&narrowed), "{narrowed} of 60 rounds narrowed after the first term");
        // a single comparison is not a conjunction
        assert!(Conjunction::of(&compare("a", Operator::Lt, 3, &schema), &schema).unwrap().is_none());
    }
}
