//! `import-image` and `export-image` on the command line: arguments and
//! the errors a user sees. (What an import records is tested in
//! crates/image, against skopeo.)

mod common;

use common::Env;

fn fails_with(env: &Env, args: &[&str], want: &[&str]) {
    let o = env.strata(args);
    assert!(!o.status.success(), "{args:?} succeeded");
    let err = String::from_utf8_lossy(&o.stderr);
    for w in want {
        assert!(err.contains(w), "{args:?}: {err:?} lacks {w:?}");
    }
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
}

#[test]
fn bad_locations_and_options_are_named() {
    let env = Env::new("vfs");
    fails_with(
        &env,
        &["import-image", "docker://busybox"],
        &["unknown transport \"docker\""],
    );
    fails_with(&env, &["import-image", "oci:"], &["the path is empty"]);
    fails_with(
        &env,
        &["import-image", "--platform", "linux", "oci:/x"],
        &["OS/ARCH[/VARIANT]"],
    );
    fails_with(
        &env,
        &["import-image", "-n", "Bad Name", "oci:/x"],
        &["Bad Name"],
    );
    let missing = env.graph().join("nothing-here");
    let loc = format!("oci:{}", missing.display());
    fails_with(
        &env,
        &["import-image", &loc],
        &["index.json", "No such file"],
    );
    fails_with(
        &env,
        &["export-image", "--compress", "lz4", "img", "oci:/x"],
        &["gzip, zstd or none"],
    );
}
