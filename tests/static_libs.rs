//! The Makefile's `STATIC_LIBS`, which links the static library for the C
//! tests and goes into bottle.pc's `Libs.private`, must be exactly what
//! rustc says a program linking libbottle.a needs.

use std::path::Path;
use std::process::Command;

#[test]
fn makefile_static_libs_are_what_rustc_prints() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // A target folder of its own: the staticlib-only build would otherwise
    // replace target/release's artifacts. rustc prints the list only when
    // it builds the crate, so the crate (not its dependencies) is rebuilt.
    let target = root.join("target/static-libs");
    let cargo = |args: &[&str]| {
        let (subcommand, args) = args.split_first().expect("a subcommand");
        let out = Command::new(env!("CARGO"))
            .current_dir(root)
            .arg(subcommand)
            .arg("--target-dir")
            .arg(&target)
            .args(args)
            .output()
            .expect("run cargo");
        assert!(out.status.success(), "cargo {args:?}: {out:?}");
        String::from_utf8(out.stderr).expect("cargo's messages are UTF-8")
    };
    cargo(&["clean", "-p", "bottle", "--release"]);
    let messages = cargo(&[
        "rustc",
        "--release",
        "--lib",
        "--crate-type",
        "staticlib",
        "--",
        "--print",
        "native-static-libs",
    ]);
    let printed = messages
        .lines()
        .find_map(|l| l.split_once("native-static-libs: ").map(|(_, libs)| libs))
        .unwrap_or_else(|| panic!("rustc printed no native-static-libs:\n{messages}"));

    let makefile = std::fs::read_to_string(root.join("Makefile")).expect("read the Makefile");
    let line = makefile
        .lines()
        .find_map(|l| l.strip_prefix("STATIC_LIBS"))
        .and_then(|rest| rest.trim_start().strip_prefix(":="))
        .expect("the Makefile sets STATIC_LIBS :=");
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>(),
        printed.split_whitespace().collect::<Vec<_>>(),
        "Makefile's STATIC_LIBS differs from rustc's --print native-static-libs"
    );
}
