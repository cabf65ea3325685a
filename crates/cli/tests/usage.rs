//! Global options, parsing rules, exit codes, version and completions.

mod common;

use std::process::Command;

use common::{have_reference, is_root, mode_of, Env};

fn strata() -> Command {
    Command::new(env!("CARGO_BIN_EXE_strata"))
}

#[test]
fn unknown_option_is_a_usage_error() {
    let e = Env::new("vfs");
    let o = e.strata(&["layers", "--bogus"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(o.stdout.is_empty());
    if have_reference() {
        assert_eq!(e.reference(&["layers", "--bogus"]).status.code(), Some(125));
    }
}

#[test]
fn unknown_command_fails() {
    let o = strata().arg("bogus").output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "bogus: unrecognized command.\n"
    );
}

#[test]
fn version_and_completion() {
    let o = strata().arg("version").output().unwrap();
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("Version: {}\n", env!("CARGO_PKG_VERSION"))
    );
    let o = strata().args(["completion", "bash"]).output().unwrap();
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("import-layer") && s.contains("strata"), "{s}");
}

#[test]
fn help_for_every_command() {
    for cmd in [
        "create-layer",
        "import-layer",
        "applydiff",
        "mount",
        "unmount",
        "mounted",
        "changes",
        "diff",
        "diffsize",
        "delete-layer",
        "delete",
        "layers",
        "layer",
        "exists",
        "status",
        "wipe",
        "shutdown",
        "version",
        "metadata",
        "set-metadata",
        "get-names",
        "add-names",
        "set-names",
        "list-layer-data",
        "get-layer-data",
        "set-layer-data",
        "copy",
        "layer-parent-owners",
        "apply-diff",
        "umount",
        "diff-size",
        "create-image",
        "images",
        "images-by-digest",
        "image",
        "list-image-data",
        "get-image-data",
        "get-image-data-size",
        "get-image-data-digest",
        "set-image-data",
        "delete-image",
        "create-container",
        "containers",
        "container",
        "list-container-data",
        "get-container-data",
        "get-container-data-size",
        "get-container-data-digest",
        "set-container-data",
        "get-container-dir",
        "get-container-run-dir",
        "container-parent-owners",
        "delete-container",
        "createimage",
        "deletecontainer",
    ] {
        let o = strata().args([cmd, "--help"]).output().unwrap();
        assert!(o.status.success(), "{cmd} --help");
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("--graph"),
            "{cmd}"
        );
    }
}

fn parsing_rules(driver: &str) {
    let e = Env::new(driver);
    // Booleans take =false; the last of a repeated option wins.
    e.ok(&["create-layer", "--id", "x", "--id", "a"]);
    assert_eq!(e.ok(&["layers", "--json=false"]), "a\n");
    assert_eq!(e.ok(&["layers", "-j=false", "-t=false"]), "a\n");
    assert_eq!(e.ok(&["--debug=false", "layers"]), "a\n");
    // Global options after the command, and relative paths with missing
    // parents (created 0700).
    let o = Command::new(env!("CARGO_BIN_EXE_strata"))
        .current_dir(e.dir.path())
        .env("CONTAINERS_STORAGE_CONF", e.dir.path().join("storage.conf"))
        .args([
            "create-layer",
            "--id",
            "rel",
            "-g",
            "deep/er/g",
            "-R",
            "deep/er/r",
            "-s",
            driver,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stderr.is_empty());
    let g = e.dir.path().join("deep/er/g");
    assert_eq!(mode_of(&g), 0o700);
    assert_eq!(mode_of(&e.dir.path().join("deep/er/r")), 0o700);
    assert!(
        std::fs::read_to_string(g.join(format!("{driver}-layers/layers.json")))
            .unwrap()
            .contains("\"rel\"")
    );
    // Successful commands print nothing on stderr; --debug may.
    let o = e.strata(&["--debug", "layers"]);
    assert!(o.status.success());
}

#[test]
fn vfs_parsing_rules() {
    parsing_rules("vfs");
}

#[test]
fn privileged_overlay_parsing_rules() {
    if is_root() {
        parsing_rules("overlay");
    }
}

#[test]
fn storage_conf_and_environment() {
    let e = Env::new("vfs");
    let conf = e.dir.path().join("other.conf");
    std::fs::write(
        &conf,
        format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n[storage.options.vfs]\nignore_chown_errors = \"true\"\n",
            e.dir.path().join("cg").display(),
            e.dir.path().join("cr").display()
        ),
    )
    .unwrap();
    let run = |env: &[(&str, &str)], args: &[&str]| {
        let mut c = strata();
        c.env("CONTAINERS_STORAGE_CONF", &conf)
            .env_remove("STORAGE_DRIVER")
            .env_remove("STORAGE_OPTS");
        for (k, v) in env {
            c.env(k, v);
        }
        c.args(args).output().unwrap()
    };
    let o = run(&[], &["status"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains(&format!("Root: {}\n", e.dir.path().join("cg").display())),
        "{s}"
    );
    assert!(s.contains("Driver Name: vfs\n"), "{s}");
    assert!(
        s.contains("Driver Options: [vfs.ignore_chown_errors=true]\n"),
        "{s}"
    );
    let o = run(
        &[("STORAGE_OPTS", "vfs.ignore_chown_errors=false")],
        &["status"],
    );
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("Driver Options: [vfs.ignore_chown_errors=false]\n"),
        "{s}"
    );
    // A bad configuration file is an error naming the file.
    std::fs::write(&conf, "[storage\n").unwrap();
    let o = run(&[], &["status"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("other.conf"));
}
