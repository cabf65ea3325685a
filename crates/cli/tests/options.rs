//! Driver options against the reference: strata accepts an option exactly
//! when containers-storage 1.43 does, except where README's "Differences"
//! section says otherwise (those cases say what strata does instead).

mod common;

use common::{have_reference, is_root, Env};

/// What strata does with a set of options.
enum Want {
    /// As the reference: accepted by both or refused by both.
    Same,
    /// A listed difference: strata accepts (`true`) or refuses (`false`).
    Differs(bool),
}

use Want::{Differs, Same};

fn accepted(o: &std::process::Output) -> bool {
    o.status.success()
}

fn check(driver: &str, cases: &[(&[&str], Want)]) {
    let mut wrong = Vec::new();
    for (opts, want) in cases {
        let mut args = Vec::new();
        for o in *opts {
            args.extend(["--storage-opt", o]);
        }
        args.push("layers");
        let (ours, theirs) = (Env::new(driver), Env::new(driver));
        let o = ours.strata(&args);
        let r = theirs.reference(&args);
        let _ = theirs.reference(&["shutdown", "-f"]);
        let expected = match want {
            Same => accepted(&r),
            Differs(ours) => {
                assert_ne!(*ours, accepted(&r), "{opts:?}: no longer a difference");
                *ours
            }
        };
        if accepted(&o) != expected {
            wrong.push(format!(
                "{opts:?}: strata {} ({}), reference {} ({})",
                accepted(&o),
                String::from_utf8_lossy(&o.stderr).trim(),
                accepted(&r),
                String::from_utf8_lossy(&r.stderr).trim()
            ));
        } else if !accepted(&o) {
            // A refusal names what it refuses.
            let err = String::from_utf8_lossy(&o.stderr);
            let key = opts[0].split('=').next().unwrap().trim();
            let key = key.rsplit('.').next().unwrap();
            assert!(err.contains(key), "{opts:?}: unclear error: {err}");
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn privileged_vfs_options_match_reference() {
    if !is_root() || !have_reference() {
        return;
    }
    check(
        "vfs",
        &[
            (&["vfs.ignore_chown_errors=true"], Same),
            (&["vfs.ignore_chown_errors=TRUE"], Same),
            (&["vfs.ignore_chown_errors=1"], Same),
            (&[" vfs.ignore_chown_errors = f"], Same),
            (&["vfs.ignore_chown_errors=maybe"], Same),
            (&["vfs.ignore_chown_errors="], Same),
            (&[".ignore_chown_errors=true"], Same),
            (&["Vfs.ignore_chown_errors=true"], Same),
            (&["ovelray.mount_program=/usr/bin/fuse-overlayfs"], Same),
            (&["vfs.imagestore=/nonexistent"], Same),
            (&["VFS.IMAGESTORE=/nonexistent"], Same),
            (&["vfs.mountopt=nodev"], Same),
            (&["vfs.size=10G"], Same),
            (&["vfs.bogus=1"], Same),
            (&["bogus=1"], Same),
            (&["novalue"], Same),
            (&["vfs.additionalimagestore=/x"], Same),
            // Booleans in any case and as yes/no/on/off.
            (&["vfs.ignore_chown_errors=on"], Differs(true)),
            (&["vfs.ignore_chown_errors=tRuE"], Differs(true)),
            // Bare keys for every driver.
            (&["ignore_chown_errors=true"], Differs(true)),
            // Another built-in driver's options are skipped.
            (&["btrfs.min_space=1G"], Differs(true)),
            (&["zfs.fsname=x"], Differs(true)),
            // Image stores are absolute paths.
            (&["vfs.imagestore=relative"], Differs(false)),
            // `sync` (containers-storage 1.43 does not know it).
            (&["vfs.sync=filesystem"], Differs(true)),
        ],
    );
}

#[test]
fn privileged_overlay_options_match_reference() {
    if !is_root() || !have_reference() {
        return;
    }
    let fuse = "overlay.mount_program=/usr/bin/fuse-overlayfs";
    check(
        "overlay",
        &[
            (&["overlay.ignore_chown_errors=true"], Same),
            (&["overlay.ignore_chown_errors=maybe"], Same),
            (&["ignore_chown_errors=true"], Same),
            (&["IGNORE_CHOWN_ERRORS=true"], Same),
            (&[".ignore_chown_errors=true"], Same),
            (&["ovelray.mount_program=/usr/bin/fuse-overlayfs"], Same),
            (&["overlay.imagestore=relative"], Same),
            (&["overlay.mountopt=nodev"], Same),
            (&["overlay2.mountopt=nodev"], Same),
            (&["Overlay.MOUNTOPT=nodev"], Same),
            (&["overlay.mountopt="], Same),
            (&["overlay.bogus=1"], Same),
            (&["bogus=1"], Same),
            (&["novalue"], Same),
            (&["overlay.skip_mount_home=true"], Same),
            (&["overlay.force_mask=700"], Same),
            (&["overlay.force_mask=999", fuse], Same),
            (&["overlay.force_mask=private", fuse], Same),
            (&["overlay.inodes=x"], Same),
            (&["overlay.inodes=-1"], Same),
            (&["overlay.size=lots"], Same),
            (&["overlay.size="], Same),
            (&[fuse], Same),
            (&["overlay.ignore_chown_errors=on"], Differs(true)),
            (&["Vfs.ignore_chown_errors=true"], Differs(true)),
            (&["btrfs.min_space=1G"], Differs(true)),
            // A bad boolean is refused (the reference ignores this key's value).
            (&["overlay.skip_mount_home=maybe"], Differs(false)),
            (&["overlay.sync=filesystem"], Differs(true)),
        ],
    );
}
