//! `now()` (and its alias `current_timestamp`) on the engine clock: on the manual clock a
//! query asking for "the last five minutes" means the notebook's five minutes, not the wall
//! clock's. Like DataFusion's own `now()`, the time is fixed once per statement, at planning.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow_schema::{DataType, TimeUnit};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

use crate::clock::Clock;

#[derive(Debug)]
pub struct EngineNow {
    clock: Arc<Clock>,
    signature: Signature,
    aliases: Vec<String>,
}

/// The UDF to register in a session, replacing the built-in `now()`.
pub fn now_udf(clock: Arc<Clock>) -> ScalarUDF {
    ScalarUDF::from(EngineNow { clock, signature: Signature::nullary(Volatility::Stable), aliases: vec!["current_timestamp".into()] })
}

impl EngineNow {
    fn value(&self) -> ScalarValue {
        ScalarValue::TimestampNanosecond(self.clock.now().timestamp_nanos_opt(), None)
    }
}

impl PartialEq for EngineNow {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.clock, &other.clock)
    }
}

impl Eq for EngineNow {}

impl Hash for EngineNow {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.clock).hash(state);
    }
}

impl ScalarUDFImpl for EngineNow {
    fn name(&self) -> &str {
        "now"
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Nanosecond, None))
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(self.value()))
    }

    fn simplify(&self, _args: Vec<Expr>, _info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        Ok(ExprSimplifyResult::Simplified(Expr::Literal(self.value(), None)))
    }
}
