//! JSON lines read as Athena's Hive JSON SerDes read them: a column the catalog types
//! `string` takes numbers and booleans as their text (`"amount": 25.5` next to
//! `"amount": "12.00"` is the string "25.5"), where DataFusion's JSON source fails the whole
//! query on the first one. The same scan otherwise: files split at line boundaries, any
//! compression, projections pushed into the decoder; the decoder is arrow-json's with
//! primitive coercion on.

use std::sync::Arc;

use arrow_schema::SchemaRef;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::json::JsonDecoder;
use datafusion::datasource::physical_plan::{FileOpenFuture, FileOpener, FileScanConfig, FileSource};
use datafusion::datasource::projection::{ProjectionOpener, SplitProjection};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::projection::ProjectionExprs;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion_datasource::PartitionedFile;
use datafusion_datasource::boundary_stream::AlignedBoundaryStream;
use datafusion_datasource::decoder::{DecoderDeserializer, deserialize_stream};
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;

/// The file source of a catalog table stored as JSON lines.
#[derive(Clone)]
pub struct LenientJsonSource {
    table_schema: TableSchema,
    batch_size: Option<usize>,
    metrics: ExecutionPlanMetricsSet,
    projection: SplitProjection,
}

impl LenientJsonSource {
    pub fn new(table_schema: TableSchema) -> Self {
        Self { projection: SplitProjection::unprojected(&table_schema), table_schema, batch_size: None, metrics: ExecutionPlanMetricsSet::new() }
    }
}

impl FileSource for LenientJsonSource {
    fn create_file_opener(&self, object_store: Arc<dyn ObjectStore>, base_config: &FileScanConfig, _partition: usize) -> Result<Arc<dyn FileOpener>> {
        let file_schema = self.table_schema.file_schema();
        let opener = Arc::new(LenientJsonOpener {
            schema: Arc::new(file_schema.project(&self.projection.file_indices)?),
            batch_size: self.batch_size.unwrap_or(8192),
            compression: base_config.file_compression_type,
            store: object_store,
        });
        // The partition columns and the projection's expressions, as every file source has them.
        ProjectionOpener::try_new(self.projection.clone(), opener, file_schema)
    }

    fn table_schema(&self) -> &TableSchema {
        &self.table_schema
    }

    fn with_batch_size(&self, batch_size: usize) -> Arc<dyn FileSource> {
        Arc::new(Self { batch_size: Some(batch_size), ..self.clone() })
    }

    fn try_pushdown_projection(&self, projection: &ProjectionExprs) -> Result<Option<Arc<dyn FileSource>>> {
        let merged = self.projection.source.try_merge(projection)?;
        let projection = SplitProjection::new(self.table_schema.file_schema(), &merged);
        Ok(Some(Arc::new(Self { projection, ..self.clone() })))
    }

    fn projection(&self) -> Option<&ProjectionExprs> {
        Some(&self.projection.source)
    }

    fn metrics(&self) -> &ExecutionPlanMetricsSet {
        &self.metrics
    }

    fn file_type(&self) -> &str {
        "json"
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn datafusion::physical_plan::PhysicalExpr>) -> Result<datafusion::common::tree_node::TreeNodeRecursion>,
    ) -> Result<datafusion::common::tree_node::TreeNodeRecursion> {
        datafusion::physical_plan::apply_expression_roots(self.projection.source.iter(), f)
    }
}

struct LenientJsonOpener {
    schema: SchemaRef,
    batch_size: usize,
    compression: FileCompressionType,
    store: Arc<dyn ObjectStore>,
}

impl FileOpener for LenientJsonOpener {
    fn open(&self, file: PartitionedFile) -> Result<FileOpenFuture> {
        let (store, schema, batch_size, compression) = (self.store.clone(), self.schema.clone(), self.batch_size, self.compression);
        Ok(Box::pin(async move {
            let location = file.object_meta.location.clone();
            // A split file is read from the first line starting in its range to the line
            // its range ends in, so each line is read by exactly one split.
            let bytes = match &file.range {
                Some(range) => {
                    let (start, end) = (u64::try_from(range.start).unwrap_or(0), u64::try_from(range.end).unwrap_or(0));
                    AlignedBoundaryStream::new(store, location, start, end, file.object_meta.size, b'\n').await?.map_err(DataFusionError::from).boxed()
                }
                None => store.get_opts(&location, object_store::GetOptions::default()).await?.into_stream().map_err(DataFusionError::from).boxed(),
            };
            let decoder = arrow_json::ReaderBuilder::new(schema).with_batch_size(batch_size).with_coerce_primitive(true).build_decoder()?;
            let input = compression.convert_stream(bytes)?.fuse();
            let batches = deserialize_stream(input, DecoderDeserializer::new(JsonDecoder::new(decoder)));
            Ok(batches.map_err(DataFusionError::from).boxed())
        }))
    }
}
