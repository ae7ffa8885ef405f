//! Faster evaluation of the expressions in a finished physical plan: the last of the physical
//! optimizer's rules, so every other rule (filter pushdown into scans, pruning predicates,
//! join selection) has seen DataFusion's own expressions. Each replacement computes exactly
//! what it replaces and shows as it does; only the work differs. A decimal expression also
//! bounds and orders as the one it wraps; a filter takes a Conjunction only where its
//! output's equivalences come out the same.
//!
//! - [`decimals`]: decimal `+ - *` without a per-value overflow check where none can overflow.
//! - [`conjunctions`]: a filter's AND chain evaluated term by term on the rows still selected.

pub mod conjunctions;
pub mod decimals;

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateInputMode};
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use arrow_schema::Schema;

#[derive(Debug, Default)]
pub struct FasterExprs;

impl PhysicalOptimizerRule for FasterExprs {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| node_exprs(node)).data()
    }

    fn name(&self) -> &str {
        "faster_exprs"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The node with its projections', filter's or aggregate arguments' expressions replaced.
fn node_exprs(node: Arc<dyn ExecutionPlan>) -> Result<Transformed<Arc<dyn ExecutionPlan>>> {
    if let Some(projection) = node.downcast_ref::<ProjectionExec>() {
        let schema = projection.input().schema();
        let mut changed = false;
        let mut exprs = Vec::with_capacity(projection.expr().len());
        for e in projection.expr() {
            let new = faster(&e.expr, &schema)?;
            changed |= new.transformed;
            exprs.push(ProjectionExpr { expr: new.data, alias: e.alias.clone() });
        }
        if changed {
            return Ok(Transformed::yes(Arc::new(ProjectionExec::try_new(exprs, Arc::clone(projection.input()))?)));
        }
    } else if let Some(filter) = node.downcast_ref::<FilterExec>() {
        let schema = filter.input().schema();
        let decimals = faster(filter.predicate(), &schema)?;
        let mut candidates = Vec::new();
        if let Some(conjunction) = conjunctions::Conjunction::of(&decimals.data, &schema)? {
            candidates.push(Arc::new(conjunction) as Arc<dyn PhysicalExpr>);
        }
        if decimals.transformed {
            candidates.push(decimals.data);
        }
        // A filter derives its output's constants and equal columns from its predicate's
        // AND chain and comparisons: a candidate is kept only where they come out the same.
        let properties = |f: &FilterExec| f.properties().equivalence_properties().to_string();
        for predicate in candidates {
            let rebuilt = FilterExecBuilder::from(filter).with_predicate(predicate).build()?;
            if properties(&rebuilt) == properties(filter) {
                return Ok(Transformed::yes(Arc::new(rebuilt)));
            }
        }
    } else if let Some(aggregate) = node.downcast_ref::<AggregateExec>()
        && aggregate.mode().input_mode() == AggregateInputMode::Raw
    {
        let schema = aggregate.input_schema();
        let mut changed = false;
        let mut aggregates = Vec::with_capacity(aggregate.aggr_expr().len());
        for a in aggregate.aggr_expr() {
            // order-sensitive aggregates keep theirs (a rewrite would drop their reversal)
            if a.is_reversed() || !a.order_bys().is_empty() {
                aggregates.push(Arc::clone(a));
                continue;
            }
            let mut args = Vec::new();
            let mut any = false;
            for arg in a.expressions() {
                let new = faster(&arg, &schema)?;
                any |= new.transformed;
                args.push(new.data);
            }
            match a.with_new_expressions(args, Vec::new()).filter(|_| any) {
                Some(new) => {
                    changed = true;
                    aggregates.push(Arc::new(new));
                }
                None => aggregates.push(Arc::clone(a)),
            }
        }
        if changed {
            return Ok(Transformed::yes(Arc::new(aggregate.with_new_aggr_exprs(aggregates))));
        }
    }
    Ok(Transformed::no(node))
}

/// `expr` with its decimal arithmetic replaced.
fn faster(expr: &Arc<dyn PhysicalExpr>, schema: &Schema) -> Result<Transformed<Arc<dyn PhysicalExpr>>> {
    Arc::clone(expr).transform_up(|e| {
        Ok(match decimals::DecimalArith::wrap(&e, schema)? {
            Some(new) => Transformed::yes(new),
            None => Transformed::no(e),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{SessionConfig, SessionContext};

    async fn rows(ctx: &SessionContext, sql: &str) -> std::result::Result<String, String> {
        let batches = ctx.sql(sql).await.map_err(|e| e.to_string())?.collect().await.map_err(|e| e.to_string())?;
        Ok(arrow_cast::pretty::pretty_format_batches(&batches).map_err(|e| e.to_string())?.to_string())
    }

    /// Every node of the plan of `sql`, depth first.
    async fn nodes(ctx: &SessionContext, sql: &str) -> Vec<Arc<dyn ExecutionPlan>> {
        let plan = ctx.sql(sql).await.unwrap().create_physical_plan().await.unwrap();
        let mut out = vec![];
        let mut stack = vec![plan];
        while let Some(node) = stack.pop() {
            stack.extend(node.children().into_iter().cloned());
            out.push(node);
        }
        out
    }

    /// Through a session as every Lakebook query gets one: the same rows (and errors) as
    /// plain DataFusion, with the decimal arithmetic of projections, filters and aggregate
    /// arguments and the filters' AND chains replaced; a filter whose chain gives its output
    /// constants keeps them.
    #[tokio::test]
    async fn faster_expressions_give_datafusions_results() {
        let ours = crate::query::context(SessionConfig::new().with_target_partitions(2));
        let plain = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
        // 20,000 rows in batches of 8,192; `big` exceeds 64 bits in one row of 1,000
        let table = "CREATE TABLE t AS SELECT CAST(value % 7 AS VARCHAR) AS k, CAST(value * 1.37 AS DECIMAL(15,2)) AS price, \
                     CAST((value % 11) / 100.0 AS DECIMAL(15,2)) AS disc, value % 50 AS qty, \
                     CAST(CASE WHEN value % 1000 = 0 THEN 99999999999999999999999999999999999 ELSE value END AS DECIMAL(38,0)) AS big, \
                     CASE WHEN value % 13 = 0 THEN NULL ELSE CAST(value % 100 AS DECIMAL(10,1)) END AS maybe \
                     FROM generate_series(1, 20000)";
        for ctx in [&ours, &plain] {
            rows(ctx, table).await.unwrap();
        }
        let queries = [
            "SELECT k, sum(price * (1 - disc)) AS a, sum(price * (1 - disc) * (1 + disc)) AS b, sum(big + price) AS c, sum(maybe - disc) AS d, count(*) \
             FROM t WHERE qty < 24 AND disc >= 0.05 AND disc <= 0.07 GROUP BY k ORDER BY k",
            "SELECT price * disc AS p, big - 1 AS q, maybe * 2 AS r FROM t WHERE price * disc > 100 AND qty > 40 AND maybe IS NOT NULL ORDER BY p, q LIMIT 20",
            "SELECT k, qty, price FROM t WHERE qty = 5 AND price > 10000 AND k <> '3' ORDER BY qty, k, price",
            "SELECT sum(big * big) FROM t",
            // the terms after the first read no column
            "SELECT count(*), sum(price) FROM t WHERE qty < 3 AND random() >= 0.0",
        ];
        for sql in queries {
            assert_eq!(rows(&ours, sql).await, rows(&plain, sql).await, "{sql}");
        }
        assert!(rows(&ours, queries[3]).await.unwrap_err().contains("Overflow"));

        let plan = nodes(&ours, queries[0]).await;
        let filter = plan.iter().find_map(|n| n.downcast_ref::<FilterExec>()).expect("a filter");
        assert!(filter.predicate().downcast_ref::<conjunctions::Conjunction>().is_some(), "{}", filter.predicate());
        let aggregate = plan.iter().filter_map(|n| n.downcast_ref::<AggregateExec>()).find(|a| a.mode().input_mode() == AggregateInputMode::Raw).expect("an aggregate");
        let args: Vec<_> = aggregate.aggr_expr().iter().flat_map(|a| a.expressions()).collect();
        assert!(args.iter().filter(|e| e.downcast_ref::<decimals::DecimalArith>().is_some()).count() >= 3, "{args:?}");
        let projection = nodes(&ours, queries[1]).await;
        assert!(projection.iter().filter_map(|n| n.downcast_ref::<ProjectionExec>()).flat_map(|p| p.expr()).any(|e| e.expr.downcast_ref::<decimals::DecimalArith>().is_some()));

        // qty = 5 makes qty constant below the filter: the same in both plans
        let filters = |plan: Vec<Arc<dyn ExecutionPlan>>| {
            plan.iter().filter_map(|n| n.downcast_ref::<FilterExec>()).map(|f| f.properties().equivalence_properties().to_string()).collect::<Vec<_>>()
        };
        let (a, b) = (filters(nodes(&ours, queries[2]).await), filters(nodes(&plain, queries[2]).await));
        assert_eq!(a, b);
        assert!(a.iter().any(|p| p.contains("qty")), "{a:?}");
    }
}
