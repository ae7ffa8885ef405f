//! Property tests on the parsers that read what users type (issue #29): on any input each
//! one returns a value or a typed error — never a panic — and where a form has a meaning
//! that is easy to state, the parse keeps it. A fixed budget of cases per property keeps
//! them in `cargo test`'s time.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};
use proptest::prelude::*;

use crate::schedule::Schedule;

fn config() -> ProptestConfig {
    ProptestConfig { cases: 384, failure_persistence: None, ..ProptestConfig::default() }
}

/// Text that looks like what a user types, with the characters parsers split on.
fn typed() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,40}",
        "[0-9a-z.:/!{}$*?#,()=_ -]{0,40}",
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn durations_parse_or_fail_cleanly(text in prop_oneof![typed(), "[0-9.eE+-]{1,12}(ms|s|m|h|d)?", "[0-9]{1,25}(s|m|h|d)"]) {
        let _ = crate::clock::parse_duration(&text);
    }

    #[test]
    fn a_manual_clock_advances_by_any_duration_or_says_why_not(text in "[0-9]{1,22}(s|m|h|d)") {
        let dir = tempfile::tempdir().unwrap();
        let clock = crate::Clock::open(&crate::Workspace::open(dir.path().to_path_buf()).unwrap()).unwrap();
        clock.set_manual(Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap())).unwrap();
        if let Ok(by) = crate::clock::parse_duration(&text) {
            let _ = clock.advance(by);
        }
    }

    #[test]
    fn whole_seconds_minutes_and_hours_mean_what_they_say(n in 0u64..100_000, unit in prop_oneof![Just(("s", 1u64)), Just(("m", 60)), Just(("h", 3600))]) {
        let parsed = crate::clock::parse_duration(&format!("{n}{}", unit.0)).unwrap();
        prop_assert_eq!(parsed.as_secs(), n * unit.1);
    }

    #[test]
    fn times_parse_or_fail_cleanly(text in prop_oneof![typed(), "[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})?)?"]) {
        let _ = crate::clock::parse_time(&text);
    }

    #[test]
    fn schedules_parse_or_fail_cleanly(text in prop_oneof![
        typed(),
        "cron\\([0-9*?/,LW#A-Z-]{1,6} [0-9*?/,LW#A-Z-]{1,6} [0-9*?/,LW#A-Z-]{1,6} [0-9*?/,LW#A-Z-]{1,6} [0-9*?/,LW#A-Z-]{1,6} [0-9*?/,-]{1,9}\\)",
        "rate\\([0-9]{1,12} (minute|minutes|hour|hours|day|days|x)\\)",
    ]) {
        if let Ok(schedule) = Schedule::parse(&text) {
            // A schedule that parses can be asked for its next time without panicking.
            let _ = schedule.next_after(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
        }
    }

    #[test]
    fn a_daily_cron_fires_at_its_minute_and_hour(minute in 0u32..60, hour in 0u32..24, day in 1u32..28) {
        let schedule = Schedule::parse(&format!("cron({minute} {hour} * * ? *)")).unwrap();
        let after = Utc.with_ymd_and_hms(2026, 3, day, 12, 30, 0).unwrap();
        let next: DateTime<Utc> = schedule.next_after(after).unwrap();
        prop_assert!(next > after && next - after <= chrono::Duration::days(1));
        prop_assert_eq!((next.hour(), next.minute(), next.second()), (hour, minute, 0));
        prop_assert!(next.day() == day || next.day() == day + 1);
    }

    #[test]
    fn variables_expand_or_fail_cleanly(text in prop_oneof![typed(), "([a-z ]|\\$|\\{|\\}|\\$\\{[a-z_0-9-]{0,6}\\}?){0,12}"], dashes in any::<bool>()) {
        let values: BTreeMap<&str, &str> = [("a", "1"), ("b_c", "x}y"), ("d-e", "${a}")].into();
        let _ = crate::expand_vars(&text, dashes, |name| values.get(name).copied());
    }

    #[test]
    fn text_without_a_dollar_is_left_as_it_is(text in "[^$]{0,60}") {
        prop_assert_eq!(crate::expand_vars(&text, false, |_| None).unwrap(), text);
    }

    #[test]
    fn s3_uris_parse_or_fail_cleanly(text in prop_oneof![typed(), "s3://[a-z0-9.-]{0,70}(/[ -~]{0,30})?"]) {
        if let Ok(uri) = crate::S3Uri::parse(&text) {
            // What parses prints back as an s3:// URI that parses to the same thing.
            prop_assert_eq!(crate::S3Uri::parse(&uri.to_string()).unwrap(), uri);
        }
    }

    #[test]
    fn firehose_prefixes_parse_and_evaluate_or_fail_cleanly(
        text in prop_oneof![typed(), "([a-z/=_-]|!\\{(timestamp|firehose|partitionKeyFromQuery|partitionKeyFromLambda|x):[a-zA-Z/:-]{0,12}\\}){0,6}"],
        error in any::<bool>(),
    ) {
        if let Ok(prefix) = crate::firehose::keys::Prefix::parse(&text, error) {
            let keys: BTreeMap<String, String> = prefix.partition_keys().into_iter().map(|k| (k.to_string(), "v".to_string())).collect();
            let ctx = crate::firehose::keys::Context {
                oldest_arrival: Utc.with_ymd_and_hms(2026, 3, 2, 23, 59, 30).unwrap(),
                random: "abcdefghijk",
                error_output_type: error.then_some("processing-failed"),
                partition_keys: &keys,
            };
            let _ = prefix.evaluate(&ctx);
        }
    }

    #[test]
    fn jq_paths_compile_and_run_or_fail_cleanly(expr in prop_oneof![typed(), "(\\.[a-z_]{0,6}|\\[[0-9-]{0,3}\\]|\\[\"[a-z]{0,4}\"\\]|\\||\\.){1,6}"]) {
        if let Ok(query) = crate::firehose::jq::Query::compile(&expr) {
            let record = serde_json::json!({"a": {"b": [1, "two", {"c": null}]}, "customer_id": "acme", "n": 3});
            let _ = query.first_value(&record);
        }
    }

    #[test]
    fn firehose_options_parse_or_fail_cleanly(text in typed()) {
        let _ = crate::firehose::process::PartitionKey::parse(&text);
        let _ = crate::firehose::process::Compression::parse(&text);
    }

    #[test]
    fn generator_templates_and_rates_parse_or_fail_cleanly(
        text in prop_oneof![typed(), "([a-z:\" ,{}]|\\{\\{[a-zA-Z.()0-9, '\"]{0,20}\\}\\}?){0,8}"],
        rate in prop_oneof![typed(), "[0-9.eE-]{1,10}(/(s|m|h|x))?"],
    ) {
        if let Ok(template) = crate::streams::generator::Template::parse(&text) {
            let mut rng = crate::streams::generator::rng(Some(7));
            let _ = template.render(&mut rng, Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
        }
        let _ = crate::streams::generator::parse_rate(&rate);
    }

    #[test]
    fn application_sql_parses_or_fails_cleanly(text in prop_oneof![
        typed(),
        "(CREATE TABLE [a-z]{1,4} \\([a-z]{1,3} (STRING|BIGINT|TIMESTAMP\\(3\\)|INT)(, WATERMARK FOR [a-z]{1,3} AS [a-z]{1,3} - INTERVAL '[0-9]{1,3}' (SECOND|MINUTE))?\\) WITH \\('connector' = '(kinesis|filesystem|x)'\\); ?|INSERT INTO [a-z]{1,4} SELECT [a-z*]{1,3} FROM [a-z]{1,4}; ?|'|;|--){1,4}",
    ]) {
        let _ = crate::analytics::sql::parse(&text);
        let _ = crate::analytics::sql::split_statements(&text);
        let _ = crate::analytics::sql::interval_ms(&text);
    }

    #[test]
    fn glue_graphs_parse_or_fail_cleanly(text in prop_oneof![
        typed(),
        "\\{(\"n[0-9]\": \\{\"(CatalogSource|Filter|ApplyMapping|Join|S3DirectTarget|DropNullFields|Nope)\": \\{(\"Inputs\": \\[(\"n[0-9]\",? ?){0,2}\\]|\"Name\": \"x\"|\"Paths\": \\[\\])?\\}\\},? ?){0,4}\\}",
    ]) {
        let _ = crate::glue::graph::parse(&text);
    }

    #[test]
    fn glue_conditions_and_targets_parse_or_fail_cleanly(text in prop_oneof![typed(), "(job|crawler|x):[a-z-]{0,6}(=[A-Z]{0,9})?"]) {
        let _ = crate::glue::triggers::Condition::parse(&text);
        let _ = crate::glue::triggers::Target::parse(&text);
    }

    #[test]
    fn add_partition_statements_parse_or_fail_cleanly(text in prop_oneof![
        typed(),
        "ALTER TABLE [a-z.]{1,8} ADD (IF NOT EXISTS )?(PARTITION \\(([a-z]{1,3} ?= ?('[0-9a-z]{0,3}'|[0-9]{1,3}|x),? ?){0,3}\\) ?(LOCATION '[ -~]{0,12}' ?)?){0,3}",
    ]) {
        let _ = crate::query::hive::AddPartitions::parse(&text);
    }

    #[test]
    fn dashboard_specs_parse_or_fail_with_a_line(text in prop_oneof![
        typed(),
        "(dataset = \"[a-z]{0,4}\"\n)?(\\[\\[sheet\\]\\]\n(columns = [0-9]{1,2}\n)?(\\[\\[sheet\\.(control|visual)\\]\\]\n(type = \"(bar|line|pie|kpi|table|pivot|dropdown|x)\"\n)?((x|y|group|value|values|rows|columns|field|sort|top|span|target) = (\"[a-z*(), 0-9]{0,12}\"|[0-9]{1,3}|\\[\"[a-z(*)]{0,8}\"\\])\n){0,4}){0,3}){0,2}",
    ]) {
        match crate::dashboards::spec::parse(&text) {
            Ok(spec) => prop_assert!(!spec.sheets.is_empty() && spec.sheets.iter().all(|s| !s.visuals.is_empty())),
            Err(e) => prop_assert!(e.message().starts_with("line "), "{e}"),
        }
    }

    #[test]
    fn measures_parse_or_fail_cleanly(text in prop_oneof![typed(), "[a-z_]{0,14}\\(([a-z*\"]{0,5}(, ?[0-9.e-]{0,5})?)\\)"]) {
        if let Ok(m) = crate::dashboards::spec::Measure::parse(&text) {
            prop_assert!(m.field.is_some() || m.agg == crate::dashboards::spec::Agg::Count);
            prop_assert!(m.percentile.is_none_or(|p| p > 0.0 && p < 100.0));
        }
    }
}
