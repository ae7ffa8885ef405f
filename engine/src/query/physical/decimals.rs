//! Decimal `+`, `-` and `*` without a per-value overflow check where none can overflow.
//!
//! Arrow computes every Decimal128 sum, difference and product with checked 128-bit
//! arithmetic, value by value, so an overflow is an error rather than a wrong number. That
//! check costs more than the arithmetic: TPC-H q1's `l_extendedprice * (1 - l_discount) *
//! (1 + l_tax)` over 6 M rows spent a third of the query in it. Yet a value of 64 bits
//! times another is at most 126 bits, and a sum of two 64-bit values scaled by at most 10^18
//! fits as well: when a batch's operands all fit in 64 bits (prices, quantities, rates
//! almost always do), plain 128-bit arithmetic gives exactly the checked result, and the
//! loop vectorises. Each batch is checked (one pass over the operands); any other batch —
//! a value beyond 64 bits, a null scalar, a scale gap over 18 digits, an out-of-range
//! result scale — goes to Arrow's kernel, errors and all. Result types follow Arrow's rules
//! exactly, so plans, schemas and results are unchanged.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Decimal128Type;
use arrow_array::{ArrayRef, Decimal128Array};
use arrow_schema::{DataType, FieldRef, Schema};
use datafusion::arrow::compute::binary;
use datafusion::arrow::compute::kernels::numeric;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::interval_arithmetic::Interval;
use datafusion::logical_expr::sort_properties::ExprProperties;
use datafusion::logical_expr::{ColumnarValue, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::BinaryExpr;
use datafusion::physical_expr_common::datum::apply;

/// A `BinaryExpr` of two Decimal128 operands and `+`, `-` or `*`, computed as above; it
/// shows, plans and bounds as the expression it replaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DecimalArith {
    inner: BinaryExpr,
}

impl DecimalArith {
    /// `expr` as a `DecimalArith` when it is a decimal `+ - *` over `schema`.
    pub fn wrap(expr: &Arc<dyn PhysicalExpr>, schema: &Schema) -> Result<Option<Arc<dyn PhysicalExpr>>> {
        let Some(binary) = expr.downcast_ref::<BinaryExpr>() else { return Ok(None) };
        if !matches!(binary.op(), Operator::Plus | Operator::Minus | Operator::Multiply) {
            return Ok(None);
        }
        let decimal = |e: &Arc<dyn PhysicalExpr>| e.data_type(schema).map(|t| matches!(t, DataType::Decimal128(..)));
        if !(decimal(binary.left())? && decimal(binary.right())?) {
            return Ok(None);
        }
        Ok(Some(Arc::new(Self { inner: binary.clone() })))
    }
}

impl fmt::Display for DecimalArith {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl PhysicalExpr for DecimalArith {
    fn return_field(&self, input_schema: &Schema) -> Result<FieldRef> {
        self.inner.return_field(input_schema)
    }

    fn evaluate(&self, batch: &arrow_array::RecordBatch) -> Result<ColumnarValue> {
        let left = self.inner.left().evaluate(batch)?;
        let right = self.inner.right().evaluate(batch)?;
        if let Some(fast) = unchecked(*self.inner.op(), &left, &right)? {
            return Ok(fast);
        }
        // Arrow's decimal kernels check every value whichever variant is called.
        match self.inner.op() {
            Operator::Plus => apply(&left, &right, numeric::add_wrapping),
            Operator::Minus => apply(&left, &right, numeric::sub_wrapping),
            _ => apply(&left, &right, numeric::mul_wrapping),
        }
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        self.inner.children()
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn PhysicalExpr>>) -> Result<Arc<dyn PhysicalExpr>> {
        let [left, right]: [Arc<dyn PhysicalExpr>; 2] =
            children.try_into().map_err(|_| datafusion::error::DataFusionError::Internal("a binary expression has two children".into()))?;
        Ok(Arc::new(Self { inner: BinaryExpr::new(left, *self.inner.op(), right) }))
    }

    fn evaluate_bounds(&self, children: &[&Interval]) -> Result<Interval> {
        self.inner.evaluate_bounds(children)
    }

    fn propagate_constraints(&self, interval: &Interval, children: &[&Interval]) -> Result<Option<Vec<Interval>>> {
        self.inner.propagate_constraints(interval, children)
    }

    fn get_properties(&self, children: &[ExprProperties]) -> Result<ExprProperties> {
        self.inner.get_properties(children)
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt_sql(f)
    }
}

/// One operand: a whole array, or one value for every row.
enum Operand<'a> {
    Array(&'a Decimal128Array),
    Value(i128),
}

/// The decimal's (precision, scale), when it is a Decimal128 of a scale ≥ 0.
fn decimal_type(value: &ColumnarValue) -> Option<(u8, i8)> {
    match value.data_type() {
        DataType::Decimal128(p, s) if s >= 0 => Some((p, s)),
        _ => None,
    }
}

fn operand(value: &ColumnarValue) -> Option<Operand<'_>> {
    match value {
        ColumnarValue::Array(array) => array.as_primitive_opt::<Decimal128Type>().filter(|a| fits_64(a.values())).map(Operand::Array),
        ColumnarValue::Scalar(ScalarValue::Decimal128(Some(v), ..)) if fits_64(&[*v]) => Some(Operand::Value(*v)),
        ColumnarValue::Scalar(_) => None,
    }
}

/// Every value fits in a signed 64-bit integer (one branch-free pass, so it vectorises).
fn fits_64(values: &[i128]) -> bool {
    values.iter().fold(true, |all, v| all & (*v as i64 as i128 == *v))
}

/// `left op right` in plain 128-bit arithmetic, or None when that is not certain to equal
/// Arrow's checked result (then Arrow computes it).
fn unchecked(op: Operator, left: &ColumnarValue, right: &ColumnarValue) -> Result<Option<ColumnarValue>> {
    let (Some((p1, s1)), Some((p2, s2))) = (decimal_type(left), decimal_type(right)) else { return Ok(None) };
    // Arrow's result types (arrow-arith's decimal_op, Hive's rules).
    let (precision, scale, left_mul, right_mul) = match op {
        Operator::Multiply => {
            let scale = s1 as i16 + s2 as i16;
            if scale > 38 {
                return Ok(None);
            }
            (p1.saturating_add(p2 + 1).min(38), scale as i8, 1, 1)
        }
        _ => {
            let scale = s1.max(s2);
            let (l, r) = ((scale - s1) as u32, (scale - s2) as u32);
            if l > 18 || r > 18 {
                return Ok(None);
            }
            let integral = (p1 as i8 - s1).max(p2 as i8 - s2);
            ((scale.saturating_add(integral) as u8).saturating_add(1).min(38), scale, 10i128.pow(l), 10i128.pow(r))
        }
    };
    let (Some(l), Some(r)) = (operand(left), operand(right)) else { return Ok(None) };
    // a difference is a sum with the right operand's multiplier negated
    let right_signed = if op == Operator::Minus { -right_mul } else { right_mul };
    // The operands are below 2^63 in magnitude and the multipliers at most 10^18 < 2^60: a
    // product is below 2^126, a scaled sum or difference below 2^124. Nothing wraps (the
    // wrapping operations only spare the loops the overflow checks of a debug build).
    let array: Decimal128Array = match (op, l, r) {
        (_, Operand::Value(_), Operand::Value(_)) => return Ok(None),
        (Operator::Multiply, Operand::Array(a), Operand::Array(b)) => binary(a, b, |x, y| (x as i64 as i128).wrapping_mul(y as i64 as i128))?,
        (Operator::Multiply, Operand::Array(a), Operand::Value(v)) | (Operator::Multiply, Operand::Value(v), Operand::Array(a)) => {
            let v = v as i64 as i128;
            a.unary(|x| (x as i64 as i128).wrapping_mul(v))
        }
        (Operator::Plus, Operand::Array(a), Operand::Array(b)) if left_mul == 1 && right_mul == 1 => binary(a, b, |x, y| x.wrapping_add(y))?,
        (Operator::Minus, Operand::Array(a), Operand::Array(b)) if left_mul == 1 && right_mul == 1 => binary(a, b, |x, y| x.wrapping_sub(y))?,
        (_, Operand::Array(a), Operand::Array(b)) => binary(a, b, |x, y| x.wrapping_mul(left_mul).wrapping_add(y.wrapping_mul(right_signed)))?,
        (_, Operand::Array(a), Operand::Value(v)) => {
            let v = v * right_signed;
            a.unary(|x| x.wrapping_mul(left_mul).wrapping_add(v))
        }
        (_, Operand::Value(v), Operand::Array(b)) => {
            let v = v * left_mul;
            b.unary(|y| v.wrapping_add(y.wrapping_mul(right_signed)))
        }
    };
    let array: ArrayRef = Arc::new(array.with_precision_and_scale(precision, scale)?);
    Ok(Some(ColumnarValue::Array(array)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;

    fn decimals(values: &[Option<i128>], p: u8, s: i8) -> ColumnarValue {
        ColumnarValue::Array(Arc::new(Decimal128Array::from(values.to_vec()).with_precision_and_scale(p, s).unwrap()))
    }

    fn arrow(op: Operator, l: &ColumnarValue, r: &ColumnarValue) -> Result<ArrayRef> {
        let out = match op {
            Operator::Plus => apply(l, r, numeric::add_wrapping),
            Operator::Minus => apply(l, r, numeric::sub_wrapping),
            _ => apply(l, r, numeric::mul_wrapping),
        }?;
        out.into_array(1)
    }

    /// The fast path, where it applies, gives Arrow's checked kernel's exact array: values,
    /// nulls, precision and scale; where it does not apply it declines.
    #[test]
    fn unchecked_arithmetic_equals_arrows_checked_kernels() {
        let mut random = crate::streams::generator::rng(Some(7));
        let mut next = move || rand::Rng::random::<u64>(&mut random);
        let big = 10i128.pow(30);
        let mut computed = 0;
        for round in 0..200 {
            let n = 1 + (next() % 40) as usize;
            let mut column = |nulls: bool, wide: bool| -> Vec<Option<i128>> {
                (0..n)
                    .map(|_| {
                        let v = (next() as i64 >> (next() % 50)) as i128;
                        if nulls && next() % 5 == 0 {
                            None
                        } else if wide && next() % 7 == 0 {
                            Some((v % 100_000_000) * big)
                        } else {
                            Some(v)
                        }
                    })
                    .collect()
            };
            let wide = round % 4 == 0;
            let (left, right) = (column(round % 3 == 0, wide), column(round % 2 == 0, false));
            let (p1, s1) = (1 + (next() % 38) as u8, (next() % 12) as i8);
            let (p2, s2) = (1 + (next() % 38) as u8, (next() % 12) as i8);
            let (s1, s2) = (s1.min(p1 as i8), s2.min(p2 as i8));
            let l = decimals(&left, p1, s1);
            let r = decimals(&right, p2, s2);
            let scalar = ColumnarValue::Scalar(ScalarValue::Decimal128(Some((next() as i32) as i128), p2, s2));
            for op in [Operator::Plus, Operator::Minus, Operator::Multiply] {
                for (a, b) in [(&l, &r), (&l, &scalar), (&scalar, &l)] {
                    let expected = arrow(op, a, b);
                    match unchecked(op, a, b).unwrap() {
                        Some(fast) => {
                            computed += 1;
                            let fast = fast.into_array(1).unwrap();
                            let expected = expected.unwrap();
                            assert_eq!(fast.data_type(), expected.data_type(), "{op} round {round}");
                            assert_eq!(fast.to_data().nulls(), expected.to_data().nulls(), "{op} round {round}");
                            let (f, e) = (fast.as_primitive::<Decimal128Type>(), expected.as_primitive::<Decimal128Type>());
                            for i in (0..f.len()).filter(|i| e.is_valid(*i)) {
                                assert_eq!(f.value(i), e.value(i), "{op} round {round} row {i}");
                            }
                        }
                        // declined only for operands beyond 64 bits here
                        None => assert!(wide || matches!(a, ColumnarValue::Scalar(_)) && matches!(b, ColumnarValue::Scalar(_)), "{op} round {round} declined"),
                    }
                }
            }
        }
        // most cases take the fast path
        assert!(computed > 1000, "{computed} of 1800 computed unchecked");
    }

    /// An overflow still errors: the operands beyond 64 bits go to Arrow's kernel.
    #[test]
    fn an_overflow_is_still_an_error() {
        let max = decimals(&[Some(i128::MAX / 3)], 38, 0);
        let ten = decimals(&[Some(10)], 38, 0);
        assert!(unchecked(Operator::Multiply, &max, &ten).unwrap().is_none());
        let expr = DecimalArith { inner: BinaryExpr::new(col("a"), Operator::Multiply, col("b")) };
        let batch = arrow_array::RecordBatch::try_from_iter([("a", max.into_array(1).unwrap()), ("b", ten.into_array(1).unwrap())]).unwrap();
        let err = expr.evaluate(&batch).unwrap_err().to_string();
        assert!(err.contains("Overflow"), "{err}");
        // and a non-decimal is left alone
        let schema = Schema::new(vec![arrow_schema::Field::new("a", DataType::Int64, true)]);
        let plus: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(col("a"), Operator::Plus, col("a")));
        assert!(DecimalArith::wrap(&plus, &schema).unwrap().is_none());
    }

    fn col(name: &str) -> Arc<dyn PhysicalExpr> {
        let index = if name == "a" { 0 } else { 1 };
        Arc::new(datafusion::physical_expr::expressions::Column::new(name, index))
    }
}
