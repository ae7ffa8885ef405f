//! Writes the small Parquet files the workshop notebooks upload (`notebooks/data/`), so the
//! committed fixtures can be regenerated: `cargo run --example
//! notebook_fixtures -- notebooks/data`.

use std::sync::Arc;

use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "notebooks/data".into());
    std::fs::create_dir_all(&dir)?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("product_id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("category", DataType::Utf8, false),
        Field::new("price", DataType::Float64, false),
    ]));
    let names = ["kettle", "mug", "teapot", "grinder", "scale", "filter", "dripper", "tin"];
    let categories = ["kitchen", "tableware", "tableware", "kitchen", "kitchen", "coffee", "coffee", "storage"];
    let prices = [34.5, 8.0, 27.0, 49.9, 19.5, 4.2, 22.0, 6.5];
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(1..=names.len() as i64)),
            Arc::new(StringArray::from_iter_values(names)),
            Arc::new(StringArray::from_iter_values(categories)),
            Arc::new(Float64Array::from_iter_values(prices)),
        ],
    )?;
    let path = format!("{dir}/products.parquet");
    let mut writer = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path)?, schema, None)?;
    writer.write(&batch)?;
    writer.close()?;
    println!("wrote {path}");
    Ok(())
}
