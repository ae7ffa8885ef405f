//! Property tests on what the kernel reads from a cell before any service sees it (issue
//! #29): cell and magic-line parsing with shell quoting, every magic's argument parser, and
//! sizes. On any input each returns a value or an error — never a panic, which would end
//! the cell's task rather than report a usage error.

use proptest::prelude::*;

use crate::cell::{self, Cell};
use crate::magics::{self, MAGICS, Units};

fn config() -> ProptestConfig {
    ProptestConfig { cases: 384, failure_persistence: None, ..ProptestConfig::default() }
}

/// Words a user might put after a magic's name: flags, values, quotes, subcommands.
fn words() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop_oneof![
            "--?[a-z-]{1,12}",
            "[a-z0-9._:/=*-]{0,12}",
            "(create|run|list|describe|delete|start|stop|put|get|ls|cat|job|trigger|workflow|advance|manual|reset)",
            any::<String>(),
        ],
        0..6,
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_cell_parses_or_fails_cleanly(code in prop_oneof![any::<String>(), "(%{1,2}[a-z]{0,8}( [ -~]{0,20})?\\\\?\n?|[a-z ;=]{0,10}\n|'|\"|\\\\\n){0,6}"]) {
        let _ = cell::parse(&code);
    }

    #[test]
    fn stacked_magic_lines_keep_their_words(lines in prop::collection::vec(("[a-z]{1,8}", prop::collection::vec("[a-z0-9_.:/=-]{1,8}", 0..4)), 1..4)) {
        let code: String = lines.iter().map(|(name, args)| format!("%{name} {}\n", args.join(" "))).collect();
        match cell::parse(&code).unwrap() {
            Cell::Lines(calls) => {
                prop_assert_eq!(calls.len(), lines.len());
                for (call, (name, args)) in calls.iter().zip(&lines) {
                    prop_assert_eq!(&call.name, name);
                    prop_assert_eq!(&call.args, args);
                }
            }
            other => prop_assert!(false, "{other:?}"),
        }
    }

    #[test]
    fn every_magics_arguments_parse_or_fail_cleanly(magic in 0..MAGICS.len(), args in words()) {
        let spec = &MAGICS[magic];
        let _ = (spec.command)().try_get_matches_from(std::iter::once(spec.name.to_string()).chain(args));
    }

    #[test]
    fn sizes_parse_or_fail_cleanly(text in prop_oneof![any::<String>(), "[0-9.eE+-]{0,25} ?[a-zA-Z]{0,4}"]) {
        let _ = magics::parse_size(&text, Units::Si);
        let _ = magics::parse_size(&text, Units::Binary);
    }

    #[test]
    fn whole_sizes_mean_what_they_say(n in 0u64..1_000_000, unit in prop_oneof![Just(("KB", 1_000u64, 1_024u64)), Just(("MB", 1_000_000, 1 << 20)), Just(("", 1, 1))]) {
        prop_assert_eq!(magics::parse_size(&format!("{n}{}", unit.0), Units::Si).unwrap(), n * unit.1);
        prop_assert_eq!(magics::parse_size(&format!("{n} {}", unit.0), Units::Binary).unwrap(), n * unit.2);
    }
}
