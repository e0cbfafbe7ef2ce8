//! The committed header must be exactly what cbindgen makes of the sources.
//! `BOTTLE_UPDATE_HEADER=1 cargo test --test header` (or `make header`)
//! rewrites it.

use std::path::Path;

#[test]
fn committed_header_matches_cbindgen() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
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
