//! 11: the subcommands agree with each other: help texts (no empty `[env: X=]`, defaults as
//! `[default: …]`, the threshold grammar in `fleet --help`), `--auto-claim` with an optional
//! value everywhere, and posemu's own errors as `error: …` like clap's.

use std::process::{Command, Output};
use std::time::Duration;

use clap::Parser;

fn posemu(args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_posemu"))
        .args(args)
        .env("POSEMU_HOME", home.path())
        .env_remove("POSEMU_FLEET_SHARD")
        .env_remove("POSEMU_FLEET_SEED")
        .env_remove("POSEMU_MERCHANT_CLIENT_SECRET")
        .output()
        .expect("the binary runs")
}

fn help(args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.push("--help");
    let o = posemu(&all);
    assert!(o.status.success(), "{args:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const SUBCOMMANDS: [&[&str]; 10] = [
    &[],
    &["sandbox"],
    &["activate"],
    &["profiles"],
    &["fleet"],
    &["fleet", "merge"],
    &["demo"],
    &["pay"],
    &["refund"],
    &["cancel"],
];

#[test]
fn help_never_shows_an_empty_env_value() {
    for args in SUBCOMMANDS {
        let h = help(args);
        // `[env: NAME=]`: clap's way of saying the variable is unset, which reads like a bug
        assert!(!h.contains("=]"), "{args:?}:\n{h}");
        for l in h.lines().filter(|l| l.contains("[env: ")) {
            let env = l.split("[env: ").nth(1).unwrap();
            assert!(!env.starts_with(|c: char| !c.is_ascii_uppercase()), "{l}");
        }
    }
    assert!(help(&["fleet"]).contains("[env: POSEMU_FLEET_SHARD]"));
}

#[test]
fn defaults_show_as_default_everywhere() {
    let demo = help(&["demo"]);
    let line = demo.lines().find(|l| l.contains("--code-ttl")).unwrap();
    assert!(line.contains("[default: 300]"), "{line}");
    assert!(!line.contains("(300)"), "{line}");
    let sandbox = help(&["sandbox"]);
    let line = sandbox
        .lines()
        .skip_while(|l| !l.contains("--code-ttl"))
        .take(2)
        .collect::<String>();
    assert!(line.contains("[default: 300]"), "{line}");
}

#[test]
fn fleet_help_has_the_threshold_grammar() {
    for args in [&["fleet"][..], &["fleet", "merge"]] {
        let h = help(args);
        for l in posemu::cli::fleet::THRESHOLD_GRAMMAR.lines() {
            assert!(h.contains(l), "{args:?}: missing {l:?} in:\n{h}");
        }
        assert!(!h.contains("Grammar in the README"), "{h}");
    }
}

#[derive(Parser)]
struct Demo {
    #[command(flatten)]
    a: posemu::cli::demo::Args,
}

#[derive(Parser)]
struct Activate {
    #[command(flatten)]
    a: posemu::cli::activate::Args,
}

#[derive(Parser)]
struct Pay {
    #[command(flatten)]
    a: posemu::cli::pay::PayArgs,
}

#[test]
fn auto_claim_takes_an_optional_value_the_same_way_everywhere() {
    let cases: [(&[&str], Option<Duration>); 4] = [
        (&[], None),
        (&["--auto-claim"], Some(Duration::ZERO)),
        (&["--auto-claim", "20s"], Some(Duration::from_secs(20))),
        (&["--auto-claim=2s"], Some(Duration::from_secs(2))),
    ];
    for (flags, want) in cases {
        let argv = |extra: &[&'static str]| -> Vec<&'static str> {
            let mut v = vec!["posemu"];
            v.extend_from_slice(extra);
            v.extend_from_slice(flags);
            v
        };
        let demo =
            Demo::try_parse_from(argv(&[])).unwrap_or_else(|e| panic!("demo {flags:?}: {e}"));
        assert_eq!(demo.a.auto_claim, want, "demo {flags:?}");
        let activate = Activate::try_parse_from(argv(&[]))
            .unwrap_or_else(|e| panic!("activate {flags:?}: {e}"));
        assert_eq!(activate.a.auto_claim, want, "activate {flags:?}");
        let pay = Pay::try_parse_from(argv(&["--amount", "1.00"]))
            .unwrap_or_else(|e| panic!("pay {flags:?}: {e}"));
        assert_eq!(pay.a.common.auto_claim, want, "pay {flags:?}");
    }
    // and the help says so alike
    for cmd in ["activate", "demo", "pay"] {
        let h = help(&[cmd]);
        assert!(h.contains("--auto-claim [<DELAY>]"), "{cmd}:\n{h}");
        assert!(h.contains("(default at once"), "{cmd}:\n{h}");
    }
}

#[test]
fn posemu_errors_look_like_clap_errors_in_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let missing = missing.to_str().unwrap();
    let cases: [&[&str]; 8] = [
        &["activate", "--profile", "nope"],
        &["pay", "--amount", "1.00", "--profile", "nope"],
        &["refund", "ch_4fR9kT2mXq7LbN3vZp8sWc1D", "--profile", "nope"],
        &["demo", "--profile", "nope", "--listen", "127.0.0.1:0"],
        &["profiles", "show", "nope"],
        &["sandbox", "--listen", "127.0.0.1:0", "--faults", missing],
        &["fleet", "--devices", "0", "--headless"],
        &["fleet", "merge", missing],
    ];
    for args in cases {
        let o = posemu(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err:?}");
        assert!(!err.contains("posemu "), "{args:?}: {err:?}");
    }
    // clap's own, for comparison
    let o = posemu(&["activate", "--poll-interval", "9"]);
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("error: "));
}
