//! Column names matched as Athena matches them: case-insensitively. The catalog keeps names
//! lower case (the crawler and Hive DDL lower them), while JSON keys and Parquet columns keep
//! the writer's spelling (`impressionId`, `userId`); Hive's JSON SerDes and Athena's Parquet
//! reader match them regardless of case. DataFusion's readers match names exactly, so a scan
//! reads with the files' spellings and [`RespellExec`] hands the rows on under the catalog's
//! names, without copying a value.

use std::collections::HashMap;
use std::io::Read as _;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, LargeListArray, ListArray, RecordBatch, StructArray};
use arrow_schema::{DataType, FieldRef, Fields, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties, Statistics, StatisticsArgs};
use futures::StreamExt;
use object_store::ObjectStoreExt as _;

/// How much of a JSON file is read to learn its keys' spellings.
const JSON_SAMPLE: u64 = 64 * 1024;

/// The spellings of names seen in files, by lower-case name, with those of nested fields.
#[derive(Debug, Default)]
pub struct Spellings(HashMap<String, (String, Spellings)>);

impl Spellings {
    /// Records the keys of the JSON objects in `text` (one per line; a cut last line is
    /// skipped), nested objects and arrays of objects included.
    pub fn add_json_lines(&mut self, text: &str) {
        for line in text.lines() {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(line) {
                self.add_json(&value);
            }
        }
    }

    fn add_json(&mut self, value: &serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    let (_, nested) = self.0.entry(key.to_lowercase()).or_insert_with(|| (key.clone(), Spellings::default()));
                    nested.add_json(value);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| self.add_json(item)),
            _ => {}
        }
    }

    /// Records the names of a file's schema (Parquet's footer), nested fields included.
    pub fn add_fields(&mut self, fields: &Fields) {
        for field in fields {
            let (_, nested) = self.0.entry(field.name().to_lowercase()).or_insert_with(|| (field.name().clone(), Spellings::default()));
            nested.add_type(field.data_type());
        }
    }

    fn add_type(&mut self, data_type: &DataType) {
        match data_type {
            DataType::Struct(fields) => self.add_fields(fields),
            DataType::List(item) | DataType::LargeList(item) | DataType::ListView(item) | DataType::FixedSizeList(item, _) => self.add_type(item.data_type()),
            _ => {}
        }
    }

    /// `schema` with each name spelled as the files spell it.
    pub fn respell(&self, schema: &Schema) -> Schema {
        Schema::new_with_metadata(self.respell_fields(schema.fields()), schema.metadata().clone())
    }

    fn respell_fields(&self, fields: &Fields) -> Fields {
        fields.iter().map(|f| self.respell_field(f)).collect()
    }

    fn respell_field(&self, field: &FieldRef) -> FieldRef {
        let (name, nested) = match self.0.get(&field.name().to_lowercase()) {
            Some((spelled, nested)) => (spelled.clone(), Some(nested)),
            None => (field.name().clone(), None),
        };
        let data_type = match nested {
            Some(nested) => nested.respell_type(field.data_type()),
            None => field.data_type().clone(),
        };
        Arc::new(field.as_ref().clone().with_name(name).with_data_type(data_type))
    }

    fn respell_type(&self, data_type: &DataType) -> DataType {
        match data_type {
            DataType::Struct(fields) => DataType::Struct(self.respell_fields(fields)),
            // A list's item keeps its own name; its struct's fields are the keys.
            DataType::List(item) => DataType::List(Arc::new(item.as_ref().clone().with_data_type(self.respell_type(item.data_type())))),
            DataType::LargeList(item) => DataType::LargeList(Arc::new(item.as_ref().clone().with_data_type(self.respell_type(item.data_type())))),
            other => other.clone(),
        }
    }
}

/// `data_type` with its struct fields' names in lower case, at every depth: how the catalog's
/// columns are seen by SQL (which lowers unquoted names), whatever case the crawler saw.
pub fn lower_nested(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Struct(fields) => DataType::Struct(
            fields.iter().map(|f| Arc::new(f.as_ref().clone().with_name(f.name().to_lowercase()).with_data_type(lower_nested(f.data_type())))).collect(),
        ),
        DataType::List(item) => DataType::List(Arc::new(item.as_ref().clone().with_data_type(lower_nested(item.data_type())))),
        DataType::LargeList(item) => DataType::LargeList(Arc::new(item.as_ref().clone().with_data_type(lower_nested(item.data_type())))),
        other => other.clone(),
    }
}

/// The spellings of the keys in the first `JSON_SAMPLE` bytes of a JSON lines file (gzip
/// too); other compressions are not sampled.
pub async fn json_spellings(store: &dyn object_store::ObjectStore, files: &[&object_store::ObjectMeta], gzip: bool, into: &mut Spellings) -> DfResult<()> {
    for meta in files {
        let head = store.get_range(&meta.location, 0..meta.size.min(JSON_SAMPLE)).await?;
        let text = if gzip {
            // A cut gzip stream decodes up to the cut, then errs: keep what came out.
            let mut out = Vec::new();
            let _ = flate2::read::MultiGzDecoder::new(head.as_ref()).read_to_end(&mut out);
            String::from_utf8_lossy(&out).into_owned()
        } else {
            String::from_utf8_lossy(&head).into_owned()
        };
        into.add_json_lines(&text);
    }
    Ok(())
}

/// Hands on its input's rows under other names: same columns, same types but for the
/// names of (nested) fields. Values are not copied.
#[derive(Debug)]
pub struct RespellExec {
    input: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    /// Adds up the rows handed on (a Glue job's records read), when set.
    counter: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl RespellExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, schema: SchemaRef) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            input.output_partitioning().clone(),
            input.pipeline_behavior(),
            input.boundedness(),
        );
        RespellExec { input, schema, properties: Arc::new(properties), counter: None }
    }

    /// Also adds the rows it hands on to `counter`.
    pub fn counting(mut self, counter: Arc<std::sync::atomic::AtomicU64>) -> Self {
        self.counter = Some(counter);
        self
    }
}

impl DisplayAs for RespellExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "RespellExec: names as the catalog spells them")
    }
}

impl ExecutionPlan for RespellExec {
    fn name(&self) -> &str {
        "RespellExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(&self, _: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal(format!("RespellExec takes one input, not {}", children.len())));
        }
        let mut exec = RespellExec::new(children.swap_remove(0), self.schema.clone());
        exec.counter = self.counter.clone();
        Ok(Arc::new(exec))
    }

    fn statistics_from_inputs(&self, input_stats: &[Arc<Statistics>], _: &StatisticsArgs) -> DfResult<Arc<Statistics>> {
        // The same columns in the same order: the input's statistics hold.
        Ok(input_stats.first().cloned().unwrap_or_else(|| Arc::new(Statistics::new_unknown(&self.schema))))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> DfResult<SendableRecordBatchStream> {
        let schema = self.schema.clone();
        let input = self.input.execute(partition, context)?;
        let out = schema.clone();
        let counter = self.counter.clone();
        let stream = input.map(move |batch| {
            let batch = batch?;
            if let Some(counter) = &counter {
                counter.fetch_add(batch.num_rows() as u64, std::sync::atomic::Ordering::Relaxed);
            }
            respell_batch(&batch, &out)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// `batch` under `schema`'s names.
pub fn respell_batch(batch: &RecordBatch, schema: &SchemaRef) -> DfResult<RecordBatch> {
    let columns = batch.columns().iter().zip(schema.fields()).map(|(c, f)| retype(c, f.data_type())).collect::<DfResult<Vec<_>>>()?;
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(schema.clone(), columns, &options)?)
}

/// `array` with the field names of `to` (which differs from its type only in names).
fn retype(array: &ArrayRef, to: &DataType) -> DfResult<ArrayRef> {
    Ok(match (array.data_type(), to) {
        (DataType::Struct(_), DataType::Struct(fields)) => {
            let s = array.as_struct();
            let columns = s.columns().iter().zip(fields).map(|(c, f)| retype(c, f.data_type())).collect::<DfResult<Vec<_>>>()?;
            Arc::new(StructArray::try_new(fields.clone(), columns, s.nulls().cloned())?)
        }
        (DataType::List(_), DataType::List(item)) => {
            let l = array.as_list::<i32>();
            Arc::new(ListArray::try_new(item.clone(), l.offsets().clone(), retype(l.values(), item.data_type())?, l.nulls().cloned())?)
        }
        (DataType::LargeList(_), DataType::LargeList(item)) => {
            let l = array.as_list::<i64>();
            Arc::new(LargeListArray::try_new(item.clone(), l.offsets().clone(), retype(l.values(), item.data_type())?, l.nulls().cloned())?)
        }
        _ => array.clone(),
    })
}

#[cfg(test)]
mod tests {
    use arrow_schema::Field;

    use super::*;

    #[test]
    fn json_keys_are_matched_whatever_their_case_nested_too() {
        let mut seen = Spellings::default();
        seen.add_json_lines("{\"impressionId\":\"a\",\"timers\":{\"modelLookup\":\"0.1\"},\"tags\":[{\"tagName\":\"x\"}]}\n{\"cut");
        let struct_of = |name: &str| DataType::Struct(Fields::from(vec![Field::new(name, DataType::Utf8, true)]));
        let catalog = Schema::new(vec![
            Field::new("impressionid", DataType::Utf8, true),
            Field::new("timers", struct_of("modellookup"), true),
            Field::new("tags", DataType::List(Arc::new(Field::new("item", struct_of("tagname"), true))), true),
            Field::new("absent", DataType::Int64, true),
        ]);
        let files = seen.respell(&catalog);
        let names: Vec<&str> = files.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["impressionId", "timers", "tags", "absent"]);
        assert_eq!(files.field(1).data_type(), &struct_of("modelLookup"));
        assert_eq!(files.field(2).data_type(), &DataType::List(Arc::new(Field::new("item", struct_of("tagName"), true))));
    }

    #[test]
    fn a_batch_read_with_the_files_names_comes_out_with_the_catalogs() {
        let inner = Fields::from(vec![Field::new("modelLookup", DataType::Utf8, true)]);
        let timers = StructArray::new(inner.clone(), vec![Arc::new(arrow_array::StringArray::from(vec!["0.1"])) as ArrayRef], None);
        let read = Arc::new(Schema::new(vec![Field::new("timers", DataType::Struct(inner), true)]));
        let batch = RecordBatch::try_new(read, vec![Arc::new(timers)]).unwrap();
        let catalog = Arc::new(Schema::new(vec![Field::new("timers", DataType::Struct(Fields::from(vec![Field::new("modellookup", DataType::Utf8, true)])), true)]));
        let out = respell_batch(&batch, &catalog).unwrap();
        assert_eq!(out.schema(), catalog);
        assert_eq!(out.column(0).as_struct().column(0).as_string::<i32>().value(0), "0.1");
    }
}
