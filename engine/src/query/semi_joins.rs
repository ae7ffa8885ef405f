//! Semi and anti joins moved below inner joins, onto the input their keys come from.
//!
//! `WHERE o_orderkey IN (SELECT …)` becomes a left semi join where the `WHERE` stood: above
//! every join of the `FROM` list. DataFusion leaves it there, so TPC-H q18 joins all of
//! customer ⋈ orders ⋈ lineitem (6 M rows) and only then keeps the nine orders the subquery
//! found. A semi or anti join keeps or drops each row by that row's own key columns, so it
//! filters whichever input provides those columns just as well, before the inner join
//! multiplies them (Spark's `PushLeftSemiLeftAntiThroughJoin`, DuckDB's filter pushdown do the
//! same). The rule moves the semi/anti join down through column-passing projections, filters
//! and inner joins as far as the columns it reads allow; results are unchanged.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, JoinConstraint, Result};
use datafusion::logical_expr::{Expr, Filter, Join, JoinType, LogicalPlan, Projection};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

#[derive(Debug, Default)]
pub struct SemiJoinsDown;

impl OptimizerRule for SemiJoinsDown {
    fn name(&self) -> &str {
        "semi_joins_down"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Join(semi) = plan else { return Ok(Transformed::no(plan)) };
        if !matches!(semi.join_type, JoinType::LeftSemi | JoinType::LeftAnti) || semi.join_constraint != JoinConstraint::On {
            return Ok(Transformed::no(LogicalPlan::Join(semi)));
        }
        let needed = left_columns(&semi);
        match below(&semi, &semi.left, &needed)? {
            Some(plan) => Ok(Transformed::yes(plan)),
            None => Ok(Transformed::no(LogicalPlan::Join(semi))),
        }
    }
}

/// The columns of the semi join's left input that it reads: its left keys, and what its
/// filter reads that the right side does not provide.
fn left_columns(semi: &Join) -> HashSet<Column> {
    let mut columns: HashSet<Column> = semi.on.iter().flat_map(|(l, _)| l.column_refs()).cloned().collect();
    if let Some(filter) = &semi.filter {
        columns.extend(filter.column_refs().into_iter().filter(|c| !semi.right.schema().has_column(c)).cloned());
    }
    columns
}

/// `input` with the semi join moved below its top node, or None when it cannot go lower.
fn below(semi: &Join, input: &LogicalPlan, needed: &HashSet<Column>) -> Result<Option<LogicalPlan>> {
    let moved = match input {
        LogicalPlan::Projection(p) => {
            let passed = needed.iter().all(|c| p.expr.iter().any(|e| matches!(e, Expr::Column(out) if out == c)));
            if !passed {
                return Ok(None);
            }
            LogicalPlan::Projection(Projection::try_new(p.expr.clone(), Arc::new(semi_over(semi, &p.input, needed)?))?)
        }
        LogicalPlan::Filter(f) => LogicalPlan::Filter(Filter::try_new(f.predicate.clone(), Arc::new(semi_over(semi, &f.input, needed)?))?),
        LogicalPlan::Join(j) if j.join_type == JoinType::Inner => {
            let holds = |side: &LogicalPlan| needed.iter().all(|c| side.schema().has_column(c));
            let (left, right) = if holds(&j.left) {
                (Arc::new(semi_over(semi, &j.left, needed)?), j.right.clone())
            } else if holds(&j.right) {
                (j.left.clone(), Arc::new(semi_over(semi, &j.right, needed)?))
            } else {
                return Ok(None);
            };
            LogicalPlan::Join(Join::try_new(left, right, j.on.clone(), j.filter.clone(), j.join_type, j.join_constraint, j.null_equality, j.null_aware)?)
        }
        _ => return Ok(None),
    };
    Ok(Some(moved))
}

/// The semi join applied to `input`, as low in it as it goes.
fn semi_over(semi: &Join, input: &Arc<LogicalPlan>, needed: &HashSet<Column>) -> Result<LogicalPlan> {
    if let Some(lower) = below(semi, input, needed)? {
        return Ok(lower);
    }
    let join = Join::try_new(
        input.clone(),
        semi.right.clone(),
        semi.on.clone(),
        semi.filter.clone(),
        semi.join_type,
        semi.join_constraint,
        semi.null_equality,
        semi.null_aware,
    )?;
    Ok(LogicalPlan::Join(join))
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// customer ⋈ orders ⋈ lineitem with NULL keys on both sides of every IN / EXISTS.
    async fn tables(ctx: &SessionContext) {
        for sql in [
            "CREATE TABLE customer AS VALUES (1, 'ann'), (2, 'bob'), (3, 'cy'), (NULL, 'nobody')",
            "CREATE TABLE orders AS SELECT column1 AS o_orderkey, column2 AS o_custkey FROM (VALUES (10, 1), (11, 1), (12, 2), (13, 3), (NULL, 2), (14, NULL))",
            "CREATE TABLE lineitem AS SELECT column1 AS l_orderkey, column2 AS l_quantity FROM (VALUES (10, 5), (10, 7), (11, 1), (12, 9), (12, 9), (13, 2), (NULL, 4), (99, 8))",
            "CREATE TABLE big AS SELECT column1 AS k FROM (VALUES (10), (12), (99))",
            "CREATE TABLE big_null AS SELECT column1 AS k FROM (VALUES (10), (NULL))",
        ] {
            ctx.sql(sql).await.unwrap().collect().await.unwrap();
        }
    }

    const JOINED: &str = "FROM customer c JOIN orders o ON c.column1 = o.o_custkey JOIN lineitem l ON o.o_orderkey = l.l_orderkey";

    async fn rows(ctx: &SessionContext, sql: &str) -> String {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        arrow_cast::pretty::pretty_format_batches(&batches).unwrap().to_string()
    }

    #[tokio::test]
    async fn semi_and_anti_joins_filter_the_input_their_keys_come_from() {
        let ours = crate::query::context(SessionConfig::new().with_target_partitions(2));
        let plain = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
        tables(&ours).await;
        tables(&plain).await;
        let queries = [
            format!("SELECT c.column2, o.o_orderkey, sum(l.l_quantity) AS q {JOINED} WHERE o.o_orderkey IN (SELECT l_orderkey FROM lineitem GROUP BY l_orderkey HAVING sum(l_quantity) > 10) GROUP BY 1, 2 ORDER BY 1, 2"),
            format!("SELECT c.column2, o.o_orderkey, l.l_quantity {JOINED} WHERE o.o_orderkey NOT IN (SELECT k FROM big) ORDER BY 1, 2, 3"),
            format!("SELECT count(*) {JOINED} WHERE o.o_orderkey NOT IN (SELECT k FROM big_null)"),
            format!("SELECT c.column2, l.l_quantity {JOINED} WHERE EXISTS (SELECT 1 FROM big WHERE big.k = o.o_orderkey AND big.k > l.l_quantity) ORDER BY 1, 2"),
            format!("SELECT c.column2, l.l_quantity {JOINED} WHERE NOT EXISTS (SELECT 1 FROM big WHERE big.k = l.l_orderkey) ORDER BY 1, 2"),
            format!("SELECT c.column2, l.l_quantity {JOINED} WHERE c.column1 IN (SELECT o_custkey FROM orders WHERE o_orderkey > 11) AND l.l_quantity > 1 ORDER BY 1, 2"),
        ];
        for sql in &queries {
            assert_eq!(rows(&ours, sql).await, rows(&plain, sql).await, "{sql}");
        }
        // The IN above every join now filters orders, below the joins.
        let plan = rows(&ours, &format!("EXPLAIN {}", queries[0])).await;
        let logical: Vec<&str> = plan.lines().take_while(|l| !l.contains("physical_plan")).collect();
        let at = |needle: &str| logical.iter().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle} not in\n{plan}"));
        assert!(at("LeftSemi Join") > at("Inner Join: o.o_orderkey = l.l_orderkey"), "{plan}");
        assert!(at("LeftSemi Join") > at("Inner Join: c.column1 = o.o_custkey"), "{plan}");
        assert!(logical[at("LeftSemi Join") + 1].contains("SubqueryAlias: o"), "{plan}");
        // A filter reading both inputs of an inner join stays above it.
        let plan = rows(&ours, &format!("EXPLAIN {}", queries[3])).await;
        let logical: Vec<&str> = plan.lines().take_while(|l| !l.contains("physical_plan")).collect();
        let semi = logical.iter().position(|l| l.contains("LeftSemi Join")).unwrap();
        assert!(logical.iter().position(|l| l.contains("Inner Join: o.o_orderkey = l.l_orderkey")).unwrap() > semi, "{plan}");
    }
}
