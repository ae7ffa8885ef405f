//! Property tests of the Flink-SQL front end of continuous SQL applications
//! (`analytics::sql`), each over thousands of cases from a small seeded generator kept here
//! (no dependency): any text parses to Ok or Err without panicking; generated valid
//! applications (random names, quoting, keyword case, whitespace, `--` comments, watermark
//! delays, windows, sinks, statement order) parse to exactly the tables and window calls they
//! were generated from; `split_statements` gives back statements joined with `;` around quotes
//! and comments; intervals read in exact ms; every window of an event holds it; and an
//! application missing a required piece is refused. A failure names its seed (`Rng(seed)`
//! regenerates the case) and prints the input. The generators include the inputs that found
//! the front end's past bugs (non-ASCII text, names starting with keywords, overflowing
//! intervals, any whitespace around PARTITION BY).

use std::panic::catch_unwind;

use lakebook_engine::analytics::sql::{arrow_type, interval_ms, parse, split_statements, AppSql, Connector, Insert, TableDecl, Watermark, WindowCall, WindowKind};

/// splitmix64: a seeded, reproducible stream of numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let z = (self.0 ^ (self.0 >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize { (self.next() % n as u64) as usize }
    fn range(&mut self, lo: i64, hi: i64) -> i64 { lo + (self.next() % (hi - lo + 1) as u64) as i64 }
    fn chance(&mut self, percent: u64) -> bool { self.next() % 100 < percent }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str { items[self.below(items.len())] }
}

/// SQL as written (`raw`) and as `split_statements` leaves it (`seen`: comments cut, their newline kept).
#[derive(Default, Clone)]
struct Sql {
    raw: String,
    seen: String,
}

impl Sql {
    fn t(mut self, text: &str) -> Self {
        self.raw += text;
        self.seen += text;
        self
    }
    /// `piece`, unless `keep` is false (a damage leaves it out).
    fn put(mut self, piece: Sql, keep: bool) -> Self {
        if keep {
            self.raw += &piece.raw;
            self.seen += &piece.seen;
        }
        self
    }
    /// Whitespace, sometimes a `--` comment holding `;`, quotes and a parenthesis.
    fn ws(self, rng: &mut Rng) -> Self {
        if rng.chance(8) {
            let comment = rng.pick(&["-- x; y", "--it's; \"q\" `b` (", "-- ; -- ;;", "--"]);
            return self.put(Sql { raw: format!(" {comment}\n"), seen: " \n".into() }, true);
        }
        self.t(rng.pick(&[" ", " ", " ", "  ", "\n", "\n    ", "\t", " \r\n "]))
    }
    /// Whitespace or nothing.
    fn ows(self, rng: &mut Rng) -> Self { if rng.chance(50) { self } else { self.ws(rng) } }
}

/// A keyword in upper, lower or mixed case.
fn kw(rng: &mut Rng, word: &str) -> String {
    match rng.below(3) {
        0 => word.to_uppercase(),
        1 => word.to_lowercase(),
        _ => word.chars().map(|c| if rng.chance(50) { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() }).collect(),
    }
}

/// An identifier as written: any case, maybe in backquotes or double quotes.
fn written(rng: &mut Rng, name: &str) -> String {
    let quote = rng.pick(&["`", "\"", "", ""]);
    format!("{quote}{}{quote}", kw(rng, name))
}

/// A new lower-case identifier, some looking like keywords.
fn fresh(rng: &mut Rng, used: &mut Vec<String>) -> String {
    // "watermark", "constraint" once read as WATERMARK / CONSTRAINT clauses, "descriptor" as DESCRIPTOR(…).
    const STEMS: &[&str] = &["page", "user_id", "ts", "amount", "region", "k", "table_", "by", "partition", "select", "interval", "as", "from", "watermark", "constraint", "descriptor"];
    loop {
        let name = format!("{}{}", rng.pick(STEMS), rng.below(50));
        if !used.contains(&name) {
            used.push(name.clone());
            return name;
        }
    }
}

const TYPES: &[&str] = &["STRING", "BIGINT", "INT", "INTEGER", "SMALLINT", "TINYINT", "DOUBLE", "FLOAT", "BOOLEAN", "DATE", "DECIMAL(10, 2)", "NUMERIC(5)", "VARCHAR(20)", "TIMESTAMP(3)"];
const UNITS: [(&str, i64); 5] = [("MILLISECOND", 1), ("SECOND", 1_000), ("MINUTE", 60_000), ("HOUR", 3_600_000), ("DAY", 86_400_000)];

/// A few of some unit, in ms.
fn duration(rng: &mut Rng) -> i64 {
    let (_, unit) = UNITS[rng.below(UNITS.len())];
    rng.range(1, 120) * unit
}

/// `INTERVAL 'n' UNIT` of exactly `ms`, in any unit that divides it, singular or plural, any case.
fn interval(rng: &mut Rng, ms: i64, with_unit: bool) -> Sql {
    let units: Vec<(&str, i64)> = UNITS.iter().copied().filter(|(_, u)| ms % u == 0).collect();
    let (unit, u) = units[rng.below(units.len())];
    let unit = format!("{unit}{}", if rng.chance(50) { "S" } else { "" });
    let s = Sql::default().t(&kw(rng, "INTERVAL")).ws(rng).t(&format!("'{}'", ms / u));
    let unit = Sql::default().ws(rng).t(&kw(rng, &unit));
    s.put(unit, with_unit)
}

/// One required piece of an application, left out to see it refused (each refusal is certain
/// from sql.rs): every INSERT; the first source's CREATE TABLE, its 'connector', its WITH (…),
/// the `)` closing its columns or its options, its WATERMARK or PROCTIME() column, the INTERVAL
/// after `ts -`; the first INSERT's SELECT; in its first window call, a closing `)`, the
/// DESCRIPTOR(…), one of the intervals, the unit of the first.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cut { Insert, Source, Connector, With, ColumnsClose, WithClose, TimeAttribute, WatermarkInterval, Select, CallClose, Descriptor, Interval, IntervalUnit }

const CUTS: [Cut; 13] = [Cut::Insert, Cut::Source, Cut::Connector, Cut::With, Cut::ColumnsClose, Cut::WithClose, Cut::TimeAttribute, Cut::WatermarkInterval, Cut::Select, Cut::CallClose, Cut::Descriptor, Cut::Interval, Cut::IntervalUnit];

/// `'key' = 'value'` (the key in any case).
fn opt(rng: &mut Rng, key: &'static str, value: &str) -> (&'static str, Sql) {
    (key, Sql::default().t(&format!("'{}'", kw(rng, key))).ows(rng).t("=").ows(rng).t(&format!("'{value}'")))
}

/// A connector's options in random order and what they parse to: a kinesis stream or, for a
/// sink, maybe files in the lake or a Firehose stream. Values may hold `''`, `;` and `--`.
fn connector(rng: &mut Rng, sink: bool) -> (Connector, Vec<(&'static str, Sql)>) {
    let name = format!("{}{}", rng.pick(&["clicks", "o''brien", "a;b--c", "x-1"]), rng.below(10));
    let (arn, unquoted, mut options) = (rng.chance(50), name.replace("''", "'"), vec![]);
    let connector = match if sink { rng.below(3) } else { 0 } {
        0 => {
            options.push(opt(rng, "connector", "kinesis"));
            options.push(if arn { opt(rng, "stream.arn", &format!("arn:aws:kinesis:us-east-1:123456789012:stream/{name}")) } else { opt(rng, "stream", &name) });
            let initpos = rng.chance(30).then(|| rng.pick(&["LATEST", "TRIM_HORIZON"]).to_string());
            options.extend(initpos.as_deref().map(|p| opt(rng, "scan.stream.initpos", p)));
            Connector::Kinesis { stream: unquoted, initpos }
        }
        1 => {
            let (path, format) = (format!("s3://lake-{}/{}/", rng.below(100), rng.pick(&["views", "out/k=v", "a;b--c"])), rng.pick(&["json", "csv", "parquet", ""]));
            options.push(opt(rng, "connector", "filesystem"));
            options.push(opt(rng, "path", &path));
            options.extend((!format.is_empty()).then(|| opt(rng, "format", format)));
            Connector::Filesystem { path, format: if format.is_empty() { "json" } else { format }.into() }
        }
        _ => {
            options.push(opt(rng, "connector", "firehose"));
            options.push(if arn { opt(rng, "delivery-stream.arn", &format!("arn:aws:firehose:us-east-1:123456789012:deliverystream/{name}")) } else { opt(rng, "delivery-stream", &name) });
            Connector::Firehose { delivery_stream: unquoted }
        }
    };
    if rng.chance(40) && !matches!(connector, Connector::Filesystem { .. }) {
        options.push(opt(rng, "format", "json"));
    }
    for i in (1..options.len()).rev() {
        options.swap(i, rng.below(i + 1));
    }
    (connector, options)
}

/// `s` then `items`, comma-separated, spaced at random.
fn list(rng: &mut Rng, mut s: Sql, items: &[Sql]) -> Sql {
    for (i, item) in items.iter().enumerate() {
        s = if i > 0 { s.ows(rng).t(",") } else { s }.ows(rng).put(item.clone(), true);
    }
    s.ows(rng)
}

/// `CREATE [TEMPORARY] TABLE name (items) WITH (options)`, less what `keep` leaves out.
fn create(rng: &mut Rng, name: &str, items: &[Sql], options: &[Sql], keep: impl Fn(Cut) -> bool) -> Sql {
    let temporary = if rng.chance(20) { kw(rng, "TEMPORARY ") } else { String::new() };
    let s = Sql::default().t(&kw(rng, "CREATE")).ws(rng).t(&temporary).t(&kw(rng, "TABLE")).ws(rng).t(&written(rng, name)).ows(rng).t("(");
    let s = list(rng, s, items).put(Sql::default().t(")"), keep(Cut::ColumnsClose));
    let with = Sql::default().ows(rng).t(&kw(rng, "WITH")).ows(rng).t("(");
    s.put(list(rng, with, options).put(Sql::default().t(")"), keep(Cut::WithClose)), keep(Cut::With))
}

struct Source {
    name: String,
    columns: Vec<String>,
    time: String,
}

/// `TABLE(KIND(TABLE src [PARTITION BY keys], DESCRIPTOR(time), intervals…))`, less what
/// `keep` leaves out, with its kind and keys.
fn window(rng: &mut Rng, src: &Source, keep: impl Fn(Cut) -> bool) -> (Sql, WindowKind, Vec<String>) {
    let (base, k) = (duration(rng), rng.range(1, 6));
    let (function, kind, sizes) = match rng.below(4) {
        0 => ("TUMBLE", WindowKind::Tumble { size_ms: base }, vec![base]),
        1 => ("HOP", WindowKind::Hop { slide_ms: base, size_ms: base * k }, vec![base, base * k]),
        2 => ("CUMULATE", WindowKind::Cumulate { step_ms: base, size_ms: base * k }, vec![base, base * k]),
        _ => ("SESSION", WindowKind::Session { gap_ms: base }, vec![base]),
    };
    let mut keys: Vec<String> = Vec::new();
    for _ in 0..if function == "SESSION" && rng.chance(70) { rng.range(1, 3) } else { 0 } {
        let key = &src.columns[rng.below(src.columns.len())];
        if !keys.contains(key) {
            keys.push(key.clone());
        }
    }
    let mut w = Sql::default().t(&kw(rng, "TABLE")).ows(rng).t("(").ows(rng).t(&kw(rng, function)).ows(rng).t("(").ows(rng).t(&kw(rng, "TABLE")).ws(rng).t(&written(rng, &src.name));
    for (i, key) in keys.iter().enumerate() {
        // Any whitespace around BY (a newline or a tab after it once read no key).
        w = if i == 0 { w.ws(rng).t(&kw(rng, "PARTITION")).ws(rng).t(&kw(rng, "BY")).ws(rng) } else { w.ows(rng).t(",").ows(rng) }.t(&written(rng, key));
    }
    let descriptor = Sql::default().ows(rng).t(",").ows(rng).t(&kw(rng, "DESCRIPTOR")).ows(rng).t("(").ows(rng).t(&written(rng, &src.time)).ows(rng).t(")");
    w = w.put(descriptor, keep(Cut::Descriptor));
    let (dropped, unclosed) = (rng.below(sizes.len()), rng.below(2));
    for (i, &ms) in sizes.iter().enumerate() {
        let interval = interval(rng, ms, i > 0 || keep(Cut::IntervalUnit));
        w = w.put(Sql::default().ows(rng).t(",").ows(rng).put(interval, true), i != dropped || keep(Cut::Interval));
    }
    for i in 0..2 {
        w = w.put(Sql::default().ows(rng).t(")"), i != unclosed || keep(Cut::CallClose));
    }
    (w, kind, keys)
}

/// A random valid application, less the piece `damage` names (the same seed gives the same
/// application with or without it), what it parses to, and the text of its window calls.
fn app(rng: &mut Rng, damage: Option<Cut>) -> (String, AppSql, Vec<String>) {
    let (mut names, mut tables, mut sources, mut sinks) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Sources, then sinks; the first window reads the first source, where a damage falls.
    let (n_sources, n_sinks) = (rng.range(1, 2), rng.range(1, 2));
    for s in 0..n_sources + n_sinks {
        let (sink, keep) = (s >= n_sources, |piece: Cut| s > 0 || damage != Some(piece));
        let (name, mut used, mut columns) = (fresh(rng, &mut names), Vec::new(), Vec::new());
        for _ in 0..rng.range(1, 3) {
            let (column, ty) = (fresh(rng, &mut used), rng.pick(TYPES));
            columns.push((column, kw(rng, ty)));
        }
        let (time, event, delay) = (fresh(rng, &mut used), !sink && rng.chance(75), rng.chance(80).then(|| duration(rng)));
        if event {
            let (at, ty) = (rng.below(columns.len() + 1), rng.pick(&["TIMESTAMP(3)", "TIMESTAMP_LTZ(3)", "TIMESTAMP"]));
            columns.insert(at, (time.clone(), kw(rng, ty)));
        }
        let mut items: Vec<Sql> = columns.iter().map(|(c, ty)| Sql::default().t(&written(rng, c)).ws(rng).t(ty)).collect();
        let attr = if event {
            let watermark = Sql::default().t(&kw(rng, "WATERMARK")).ws(rng).t(&kw(rng, "FOR")).ws(rng).t(&written(rng, &time)).ws(rng).t(&kw(rng, "AS")).ws(rng).t(&written(rng, &time));
            let delay = delay.map(|ms| interval(rng, ms, true)).map(|iv| Sql::default().ws(rng).t("-").ws(rng).put(iv, keep(Cut::WatermarkInterval)));
            watermark.put(delay.unwrap_or_default(), true)
        } else {
            Sql::default().t(&written(rng, &time)).ws(rng).t(&kw(rng, "AS")).ws(rng).t(&kw(rng, "PROCTIME")).ows(rng).t("(").ows(rng).t(")")
        };
        let at = rng.below(items.len() + 1);
        if !sink && keep(Cut::TimeAttribute) {
            items.insert(at, attr);
        }
        let (connector, options) = connector(rng, sink);
        let options: Vec<Sql> = options.into_iter().filter(|(key, _)| *key != "connector" || keep(Cut::Connector)).map(|(_, o)| o).collect();
        let sql = create(rng, &name, &items, &options, keep);
        let (watermark, proctime) = (event.then(|| Watermark { column: time.clone(), delay_ms: delay.unwrap_or(0) }), (!sink && !event).then(|| time.clone()));
        tables.push((sql, TableDecl { name: name.clone(), columns: columns.clone(), watermark, proctime, connector }, keep(Cut::Source)));
        if sink {
            sinks.push(name);
        } else {
            sources.push(Source { name, columns: columns.into_iter().map(|(c, _)| c).collect(), time });
        }
    }
    let (mut inserts, mut statements, mut calls) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..rng.range(1, 2) {
        let target = if rng.chance(80) { sinks[rng.below(sinks.len())].clone() } else { format!("lake_db.{}", fresh(rng, &mut names)) };
        let select = Sql::default().t(&kw(rng, "SELECT")).ws(rng);
        let mut q = Sql::default().put(select, i > 0 || damage != Some(Cut::Select));
        if rng.chance(30) {
            // "Diyarbakır": a literal whose upper case is shorter (ı → I) once shifted the window call's positions.
            let literal = rng.pick(&["a;b--c", "it''s", "TABLE(x)", "x\"y`z", "--", "Diyarbakır"]);
            q = q.t(&format!("'{literal}'")).ws(rng).t(&kw(rng, "AS")).ws(rng).t("tag,").ws(rng);
        }
        q = q.t("window_start,").ws(rng).t("window_end,").ws(rng).t(&kw(rng, "COUNT(*)")).ws(rng).t(&kw(rng, "AS")).ws(rng).t("n").ws(rng).t(&kw(rng, "FROM")).ws(rng);
        let mut windows = Vec::new();
        for j in 0..rng.range(1, 2) {
            if j > 0 {
                q = q.ws(rng).t("a").ws(rng).t(&kw(rng, "JOIN")).ws(rng);
            }
            let src = if i + j == 0 { 0 } else { rng.below(sources.len()) };
            let (call, kind, partition_by) = window(rng, &sources[src], |piece| i + j > 0 || damage != Some(piece));
            let placeholder = format!("__window_{i}_{j}");
            q = q.put(Sql { raw: call.raw, seen: placeholder.clone() }, true);
            calls.push(call.seen);
            windows.push(WindowCall { placeholder, table: sources[src].name.clone(), time_column: sources[src].time.clone(), kind, partition_by });
        }
        if windows.len() > 1 {
            q = q.ws(rng).t("b").ws(rng).t(&kw(rng, "ON")).ws(rng).t("a.window_start = b.window_start");
        }
        if rng.chance(70) {
            q = q.ws(rng).t(&kw(rng, "GROUP")).ws(rng).t(&kw(rng, "BY")).ws(rng).t("window_start,").ows(rng).t("window_end");
        }
        inserts.push(Insert { target: target.clone(), query: q.seen.trim().into(), windows });
        statements.push(Sql::default().t(&kw(rng, "INSERT")).ws(rng).t(&kw(rng, "INTO")).ws(rng).t(&written(rng, &target)).ws(rng).put(q, true));
    }
    // Tables and inserts interleaved at random, each in order; `;` after the last is optional.
    let (mut t, mut n) = (tables.into_iter().peekable(), statements.into_iter().peekable());
    let (mut decls, mut text) = (Vec::new(), Sql::default().ows(rng));
    while t.peek().is_some() || n.peek().is_some() {
        let (statement, keep) = if n.peek().is_none() || t.peek().is_some() && rng.chance(50) {
            let (sql, decl, keep) = t.next().unwrap();
            decls.push(decl);
            (sql, keep)
        } else {
            (n.next().unwrap(), damage != Some(Cut::Insert))
        };
        let mut piece = statement.ows(rng);
        if t.peek().is_some() || n.peek().is_some() || rng.chance(50) {
            piece = piece.t(";").ows(rng);
        }
        if rng.chance(10) {
            piece = piece.t(";").ows(rng);
        }
        text = text.put(piece, keep);
    }
    (text.raw, AppSql { tables: decls, inserts }, calls)
}

#[test]
fn generated_applications_parse_to_what_they_declare() {
    for seed in 0..3_000 {
        let (text, expected, calls) = app(&mut Rng(seed), None);
        let parsed = parse(&text).unwrap_or_else(|e| panic!("seed {seed}: {e}\n{text}"));
        assert_eq!(parsed, expected, "seed {seed}:\n{text}");
        for insert in &parsed.inserts {
            assert!(insert.windows.iter().all(|w| insert.query.contains(&w.placeholder)), "seed {seed}: {}", insert.query);
            assert!(calls.iter().all(|call| !insert.query.contains(call.as_str())), "seed {seed}: {}", insert.query);
        }
    }
}

const SOUP: &[&str] = &[
    "CREATE", "TABLE", "TEMPORARY", "INSERT", "INTO", "SELECT", "FROM", "WITH", "WATERMARK", "FOR", "AS", "PROCTIME()", "PRIMARY KEY", "INTERVAL", "'5'", "'0'", "'-3'", "'99999999999999999999'", "SECOND", "DAYS", "millisecond",
    "TUMBLE", "HOP", "CUMULATE", "SESSION", "DESCRIPTOR", "DESCRIPTOR(ts)", "PARTITION", "BY", "'connector'", "=", "'kinesis'", "'filesystem'", "'firehose'", "'stream'", "'path'", "'s3://b/p/'", "'format'",
    "; INSERT INTO v SELECT", "; CREATE TABLE t (", "TIMESTAMP(3)", "STRING", "DECIMAL(40, 2)", "DECIMAL(x)", "ts", "clicks", "TABLE clicks", "TABLE(", "-", "(", ")", "(", ",", ";", "'", "''", "\"", "`", "--", "\n", " ", "<", ">", "x",
    "'9223372036854775807'",
];
/// Non-ASCII text outside quotes (it once panicked at a byte that is not a char boundary).
const UNICODE: &[&str] = &["é", "\u{a0}", "ı", "ſ", "🦀", "ß", "ŉ"];

/// Up to 60 tokens, run together or spaced, often after the start of a statement.
fn soup(rng: &mut Rng, tokens: &[&str]) -> String {
    let mut s = rng.pick(&["", "INSERT INTO v SELECT ", "insert into v with ", "CREATE TABLE t (", "CREATE TEMPORARY TABLE t ("]).to_string();
    for _ in 0..rng.range(0, 60) {
        s.push_str(rng.pick(tokens));
        s.push_str(rng.pick(&["", " ", "\n"]));
    }
    s
}

/// Parses `text` (and splits it, reads it as an interval and as a type): Ok or Err, no panic.
fn survives(what: &str, text: &str) {
    let statements = catch_unwind(|| {
        let _ = (parse(text), interval_ms(text), arrow_type(text));
        split_statements(text)
    });
    let statements = statements.unwrap_or_else(|_| panic!("{what}: panicked on {text:?}"));
    assert!(statements.iter().all(|s| !s.is_empty() && s.trim() == s), "{what}: {statements:?} from {text:?}");
}

#[test]
fn any_text_parses_or_is_refused_without_panicking() {
    for seed in 0..3_000 {
        let mut rng = Rng(seed);
        survives(&format!("soup, seed {seed}"), &soup(&mut rng, SOUP));
        survives(&format!("unicode soup, seed {seed}"), &soup(&mut rng, &[SOUP, UNICODE].concat()));
        let (text, ..) = app(&mut rng, None);
        if seed < 12 {
            for (i, _) in text.char_indices() {
                survives(&format!("seed {seed} cut at {i}"), &text[..i]);
                survives(&format!("seed {seed} from {i}"), &text[i..]);
            }
        }
        // Mutations: delete, repeat or insert a piece, or overwrite a byte (ASCII stays valid UTF-8).
        let mut bytes = text.into_bytes();
        for _ in 0..rng.range(1, 4) {
            let at = rng.below(bytes.len() + 1);
            let end = (at + rng.below(20) + 1).min(bytes.len());
            match rng.below(4) {
                0 => drop(bytes.drain(at..end)),
                1 => drop(bytes.splice(at..at, bytes[at..end].to_vec())),
                2 => drop(bytes.splice(at..at, rng.pick(SOUP).bytes())),
                _ if at < bytes.len() => bytes[at] = rng.below(128) as u8,
                _ => {}
            }
        }
        survives(&format!("mutated, seed {seed}"), &String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn statements_split_on_semicolons_outside_quotes_and_comments() {
    const TOKENS: &[&str] = &["SELECT", "a", "x-y", "-", "(", ")", ",", "1", "'a;b'", "'--;'", "'it''s;'", "\"q;--\"", "`b;t`", "'multi\nline;'", "''", "\"\"", "<", "é", "🦀", "ı", "a\u{a0}b"];
    for seed in 0..5_000 {
        let mut rng = Rng(seed);
        let (mut text, mut expected, n) = (Sql::default(), Vec::new(), rng.range(0, 6));
        for k in 0..n {
            if rng.chance(20) {
                text = text.ows(&mut rng).t(";"); // an empty statement: dropped
            }
            let mut statement = Sql::default().t(rng.pick(TOKENS));
            for _ in 1..rng.range(1, 8) {
                statement = statement.ws(&mut rng).t(rng.pick(TOKENS));
            }
            expected.push(statement.seen.trim().to_string());
            text = text.ows(&mut rng).put(statement, true).ows(&mut rng);
            if k + 1 < n || rng.chance(50) {
                text = text.t(";");
            }
        }
        if rng.chance(20) {
            text = text.t(" -- the end; 'x");
        }
        assert_eq!(split_statements(&text.raw), expected, "seed {seed}: {:?}", text.raw);
    }
}

#[test]
fn intervals_read_in_ms_or_are_refused() {
    for seed in 0..5_000 {
        let mut rng = Rng(seed);
        let (unit, u) = UNITS[rng.below(UNITS.len())];
        // Amounts whose ms overflow i64 are refused (they once panicked or wrapped).
        let amount = if rng.chance(50) { rng.range(-5, 200) } else { rng.range(1, i64::MAX) };
        let unit = format!("{unit}{}", if rng.chance(50) { "S" } else { "" });
        let text = format!("{}{}'{amount}'{}{}", kw(&mut rng, "INTERVAL"), rng.pick(&[" ", "\n", " \t "]), rng.pick(&[" ", "\n", " \t "]), kw(&mut rng, &unit));
        let read = catch_unwind(|| interval_ms(&text).ok()).unwrap_or_else(|_| panic!("seed {seed}: panicked on {text:?}"));
        let want = if amount > 0 { i64::try_from(amount as i128 * u as i128).ok() } else { None };
        assert_eq!(read, want, "seed {seed}: {text:?}");
    }
}

#[test]
fn every_window_of_an_event_holds_it() {
    for seed in 0..20_000 {
        let mut rng = Rng(seed);
        let (base, k) = (if rng.chance(50) { rng.range(1, 1_000) } else { duration(&mut rng) }, rng.range(1, 8));
        let kind = match rng.below(4) {
            0 => WindowKind::Tumble { size_ms: base },
            1 => WindowKind::Hop { slide_ms: base, size_ms: base * k },
            2 => WindowKind::Cumulate { step_ms: base, size_ms: base * k },
            _ => WindowKind::Session { gap_ms: base },
        };
        // Near 0, anywhere in ±30,000 years, or at a window boundary ± 1.
        let ts = match rng.below(3) {
            0 => rng.range(-5_000, 5_000),
            1 => rng.range(-1_000_000_000_000_000, 1_000_000_000_000_000),
            _ => rng.range(-100, 100) * base * k + rng.range(-1, 1),
        };
        let windows = kind.windows_of(ts);
        let msg = format!("seed {seed}: {kind:?} at {ts}: {windows:?}");
        assert!(!windows.is_empty() && windows.iter().all(|&(start, end)| start <= ts && ts < end), "{msg}");
        assert!(windows.windows(2).all(|w| w[0].1 < w[1].1), "not by end: {msg}");
        let mut each = Vec::new();
        kind.each_window(ts, |start, end| each.push((start, end)));
        assert_eq!(each, windows, "each_window: {msg}");
        assert_eq!((kind.first_end(ts), kind.last_end(ts)), (windows[0].1, windows[windows.len() - 1].1), "first_end, last_end: {msg}");
        let later = ts + rng.range(0, 3 * base * k);
        assert!(kind.first_end(ts) <= kind.first_end(later) && kind.last_end(ts) <= kind.last_end(later), "{later} ends first: {msg}");
        let (start, end) = windows[0];
        match kind {
            WindowKind::Tumble { size_ms } => assert!(windows.len() == 1 && end - start == size_ms && start.rem_euclid(size_ms) == 0, "{msg}"),
            // Exactly size/slide aligned windows of the size hold ts: all of them are there.
            WindowKind::Hop { slide_ms, size_ms } => assert!(windows.len() as i64 == size_ms / slide_ms && windows.iter().all(|&(s, e)| e - s == size_ms && s.rem_euclid(slide_ms) == 0), "{msg}"),
            // One aligned start, ends a step apart up to start + size; one step less would not hold ts.
            WindowKind::Cumulate { step_ms, size_ms } => assert!(
                start.rem_euclid(size_ms) == 0 && windows.iter().all(|&(s, e)| s == start && (e - s) % step_ms == 0) && windows.windows(2).all(|w| w[1].1 - w[0].1 == step_ms) && windows[windows.len() - 1].1 == start + size_ms && end - step_ms <= ts,
                "{msg}"
            ),
            WindowKind::Session { gap_ms } => assert_eq!(windows, [(ts, ts + gap_ms)], "{msg}"),
        }
    }
}

#[test]
fn an_application_missing_a_required_piece_is_refused() {
    let mut damaged = 0;
    for seed in 0..2_000 {
        let damage = CUTS[seed as usize % CUTS.len()];
        let ((good, ..), (bad, ..)) = (app(&mut Rng(seed), None), app(&mut Rng(seed), Some(damage)));
        if bad == good {
            continue; // nothing to leave out: no watermark delay
        }
        damaged += 1;
        assert!(parse(&good).is_ok(), "seed {seed}: {good}");
        match catch_unwind(|| parse(&bad)) {
            Ok(Err(e)) => assert_eq!(e.code(), "InvalidApplicationConfigurationException", "seed {seed}, {damage:?}: {e}\n{bad}"),
            Ok(Ok(_)) => panic!("seed {seed}: parsed without {damage:?}:\n{bad}"),
            Err(_) => panic!("seed {seed}: panicked without {damage:?}:\n{bad}"),
        }
    }
    assert!(damaged > 1_700, "only {damaged} damaged applications");
}
