//! Property test of Athena SQL as users type it (#29): random text and statements shaped like
//! Athena's DDL and DML (CREATE EXTERNAL TABLE with its Hive clauses, CTAS with its WITH
//! options, INSERT, MSCK REPAIR, ALTER TABLE ADD PARTITION, SHOW, DESCRIBE, DROP) run through
//! the engine on a real workspace. Each one succeeds or fails with a typed error naming the
//! service's error — never a panic, never an internal error — and the engine answers after.

use lakebook_engine::Lakebook;
use proptest::prelude::*;

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
}

fn ident() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z]{1,4}", Just("t".to_string()), Just("web.t".to_string()), Just("`x y`".to_string()), "[a-z]{1,3}\\.[a-z]{1,3}"]
}

fn column_type() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("int".to_string()),
        Just("string".to_string()),
        Just("bigint".to_string()),
        Just("double".to_string()),
        Just("timestamp".to_string()),
        Just("date".to_string()),
        "decimal\\([0-9]{1,2}(, ?[0-9]{1,2})?\\)",
        Just("array<string>".to_string()),
        Just("struct<a:int,b:string>".to_string()),
        Just("map<string,int>".to_string()),
        "[a-z<>:,]{1,8}",
    ]
}

fn columns() -> impl Strategy<Value = String> {
    prop::collection::vec(("[a-z]{1,3}", column_type()), 1..4).prop_map(|cs| cs.into_iter().map(|(n, t)| format!("{n} {t}")).collect::<Vec<_>>().join(", "))
}

fn location() -> impl Strategy<Value = String> {
    prop_oneof![Just("s3://lake/t/".to_string()), Just("s3://lake/".to_string()), Just("s3://nope/x/".to_string()), "'?[a-z:/]{0,12}'?"]
}

fn statement() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,60}",
        (ident(), columns(), prop::option::of(columns()), prop_oneof![
            Just("ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'"),
            Just("ROW FORMAT DELIMITED FIELDS TERMINATED BY ','"),
            Just("STORED AS PARQUET"),
            Just("STORED AS TEXTFILE"),
            Just("STORED AS ORC"),
            Just(""),
        ], location(), prop::option::of("TBLPROPERTIES \\('[a-z.]{1,8}' ?= ?'[a-z0-9]{0,4}'\\)"))
            .prop_map(|(t, cols, parts, format, loc, props)| format!(
                "CREATE EXTERNAL TABLE {t} ({cols}) {} {format} LOCATION '{loc}' {}",
                parts.map(|p| format!("PARTITIONED BY ({p})")).unwrap_or_default(),
                props.unwrap_or_default()
            )),
        (ident(), prop::collection::vec(prop_oneof![
            "format ?= ?'(PARQUET|JSON|ORC|TEXTFILE|AVRO|CSV|x)'",
            "external_location ?= ?'[a-z:/]{0,14}'",
            "partitioned_by ?= ?ARRAY\\[('[a-z]{1,2}',? ?){0,2}\\]",
            "write_compression ?= ?'(SNAPPY|GZIP|ZSTD|x)'",
            "bucketed_by ?= ?ARRAY\\['[a-z]'\\]",
            "bucket_count ?= ?[0-9-]{1,3}",
            "[a-z_]{1,6} ?= ?'?[a-z0-9]{0,4}'?",
        ], 0..3), prop_oneof![Just("SELECT 1 AS a, 'x' AS b".to_string()), Just("SELECT value AS a FROM generate_series(1, 3)".to_string()), Just("SELECT * FROM t".to_string()), "SELECT [a-z0-9*, ]{1,10}( FROM [a-z.]{1,5})?"], any::<bool>())
            .prop_map(|(t, with, query, no_data)| format!(
                "CREATE TABLE {t} {} AS {query}{}",
                if with.is_empty() { String::new() } else { format!("WITH ({})", with.join(", ")) },
                if no_data { " WITH NO DATA" } else { "" }
            )),
        (ident(), prop_oneof![Just("SELECT 1, 'x'".to_string()), Just("VALUES (1, 'a')".to_string()), "SELECT [a-z0-9*, ]{1,8}"]).prop_map(|(t, q)| format!("INSERT INTO {t} {q}")),
        ident().prop_map(|t| format!("MSCK REPAIR TABLE {t}")),
        (ident(), "[a-z]{1,2}", "'?[a-z0-9]{0,3}'?", prop::option::of(location())).prop_map(|(t, k, v, loc)| format!(
            "ALTER TABLE {t} ADD IF NOT EXISTS PARTITION ({k} = {v}){}",
            loc.map(|l| format!(" LOCATION '{l}'")).unwrap_or_default()
        )),
        prop_oneof![Just("SHOW TABLES"), Just("SHOW DATABASES"), Just("SHOW TABLES IN web '*t*'")].prop_map(str::to_string),
        ident().prop_map(|t| format!("SHOW PARTITIONS {t}")),
        ident().prop_map(|t| format!("DESCRIBE {t}")),
        ident().prop_map(|t| format!("SHOW CREATE TABLE {t}")),
        (prop_oneof![Just("TABLE"), Just("TABLE IF EXISTS"), Just("DATABASE"), Just("DATABASE IF EXISTS"), Just("VIEW")], ident()).prop_map(|(what, t)| format!("DROP {what} {t}")),
        "CREATE (DATABASE|SCHEMA) (IF NOT EXISTS )?[a-z]{1,4}( COMMENT '[a-z]{0,4}')?( LOCATION '[a-z:/]{0,8}')?",
        ident().prop_map(|t| format!("CREATE OR REPLACE VIEW v AS SELECT * FROM {t}")),
        ident().prop_map(|t| format!("SELECT count(*), max(a) FROM {t} WHERE b LIKE '%x%' GROUP BY 1 ORDER BY 1 LIMIT 3")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn athena_sql_runs_or_fails_with_a_typed_error(statements in prop::collection::vec(statement(), 1..4)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let lb = Lakebook::open(dir.path().join("ws")).expect("workspace");
        lb.lake().create_bucket("lake").expect("bucket");
        block(lb.sql().run("CREATE DATABASE web", "default")).expect("database");
        block(lb.sql().run("CREATE EXTERNAL TABLE web.t (a int, b string) STORED AS PARQUET LOCATION 's3://lake/t/'", "web")).expect("table");
        for sql in &statements {
            if let Err(e) = block(lb.sql().run(sql, "web")) {
                prop_assert_ne!(e.code(), "InternalError", "{}: {}", sql, e);
                prop_assert!(!e.message().is_empty());
            }
        }
        // The engine still answers.
        let after = block(lb.sql().run("SELECT 1", "web"));
        prop_assert!(after.is_ok(), "{:?}", after.err());
    }
}
