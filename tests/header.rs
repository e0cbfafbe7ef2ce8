//! The committed header must be exactly what cbindgen makes of the sources.
//! `BOTTLE_UPDATE_HEADER=1 cargo test --test header` (or `make header`)
//! rewrites it.

use std::path::Path;

#[test]
fn committed_header_matches_cbindgen() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config =
        cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    config.after_includes = Some(version_macros());
    let mut fresh = Vec::new();
    cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the header")
        .write(&mut fresh);
    let path = root.join("include/bottle.h");
    if std::env::var_os("BOTTLE_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &fresh).expect("write include/bottle.h");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "include/bottle.h differs from cbindgen's output; run `make header` and commit it"
    );
}

/// The header's compile-time version, from Cargo.toml (cbindgen.toml cannot
/// compute it). tests/examples.sh checks it against `bottle_version()`.
fn version_macros() -> String {
    let part = |s: &str| s.parse::<u32>().expect("a numeric version part");
    let major = part(env!("CARGO_PKG_VERSION_MAJOR"));
    let minor = part(env!("CARGO_PKG_VERSION_MINOR"));
    let patch = part(env!("CARGO_PKG_VERSION_PATCH"));
    assert!(
        minor < 1000 && patch < 1000,
        "BOTTLE_VERSION_NUMBER has 3 digits each"
    );
    format!(
        "
// The version of libbottle this header belongs to. Compare
// BOTTLE_VERSION_NUMBER (MAJOR * 1000000 + MINOR * 1000 + PATCH) in `#if`
// to require a version at compile time; `bottle_version()` tells the
// library's at run time.
#define BOTTLE_VERSION_MAJOR {major}
#define BOTTLE_VERSION_MINOR {minor}
#define BOTTLE_VERSION_PATCH {patch}
#define BOTTLE_VERSION_NUMBER {number}
#define BOTTLE_VERSION_STRING \"{major}.{minor}.{patch}\"",
        number = major * 1_000_000 + minor * 1000 + patch,
    )
}
