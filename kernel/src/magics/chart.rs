//! `%chart KIND --x COL --y COL [--color COL] [--title T]`: draws the previous `%sql` result,
//! so a query can be looked at as a table first and then charted without running it again.

use clap::{CommandFactory, Parser};

use super::{Body, Ctx, Form, MagicSpec};
use crate::render::Bundle;
use crate::render::chart::{self, ChartKind, ChartSpec};
use crate::error::CellError;

pub const SPEC: MagicSpec = MagicSpec {
    name: "chart",
    summary: "Chart the previous %sql result (bar, line, scatter, area, pie, histogram) with Plotly",
    form: Form::Line,
    command: ChartArgs::command,
    body: Body::Data,
    run: runner!(SPEC, sync run),
};

#[derive(Debug, Parser)]
#[command(
    about = "Chart the previous %sql result (bar, line, scatter, area, pie, histogram) with Plotly",
    after_help = "Example: %sql SELECT day, count(*) AS clicks FROM clicks GROUP BY day\n         %chart bar --x day --y clicks --title \"Clicks per day\"\n`%sql … --chart KIND --x … --y …` does both in one cell."
)]
pub struct ChartArgs {
    /// bar, line, scatter, area, pie or histogram
    #[arg(value_enum)]
    kind: ChartKind,
    /// Column for the x axis (pie: the slice labels)
    #[arg(long, value_name = "COL")]
    x: String,
    /// Column for the y axis (pie: the slice sizes; histogram: optional weights)
    #[arg(long, value_name = "COL")]
    y: Option<String>,
    /// One series per value of this column
    #[arg(long, value_name = "COL")]
    color: Option<String>,
    /// The chart's title
    #[arg(long, value_name = "TEXT")]
    title: Option<String>,
}

pub fn run(args: ChartArgs, ctx: Ctx<'_>) -> Result<Option<Bundle>, CellError> {
    let state = ctx.state;
    let batch = state.last_result.as_ref().ok_or_else(|| {
        CellError::usage("there is no result to chart yet").with_detail("run a query first: %sql SELECT …, then %chart KIND --x COL --y COL")
    })?;
    let spec = ChartSpec { kind: args.kind, x: args.x, y: args.y, color: args.color, title: args.title };
    let bundle = chart::chart(&spec, batch, !state.plotly_loaded)?;
    state.plotly_loaded = true;
    Ok(Some(bundle))
}
