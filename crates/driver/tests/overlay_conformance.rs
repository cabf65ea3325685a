//! The shared conformance suite on the overlay driver: kernel overlay, and
//! fuse-overlayfs as mount program.
//!
//! Two cases are left out because they encode full-tree (naive) diff
//! semantics that the reference's overlay driver does not have either: its
//! native diff reads the upper directory, so an unmodified hard link to an
//! edited file (`changes_after_edits`: `/hard`) and an ancestor directory
//! whose size, mode and mtime equal the lower's (`recreate_at_depths`:
//! `/d0` at depth 2) are not changes. overlay_diff.rs covers the native
//! diff instead; with fuse-overlayfs (no native diff) they run.

use strata_driver::conformance::Suite;

fn kernel() -> Suite {
    let mut s = Suite::new("overlay", strata_driver::overlay::init);
    s.left_out = vec![
        ("changes_after_edits", NATIVE_DIFF),
        ("recreate_at_depths", NATIVE_DIFF),
    ];
    s
}

const NATIVE_DIFF: &str = "full-tree diff semantics; the native diff reads the upper directory";

fn fuse() -> Suite {
    let mut s = Suite::new("overlay", strata_driver::overlay::init);
    s.options = vec!["overlay.mount_program=/usr/bin/fuse-overlayfs".into()];
    s
}

mod kernel_overlay {
    use super::kernel;
    strata_driver::conformance_tests!(kernel());
}

mod fuse_overlay {
    use super::fuse;
    strata_driver::conformance_tests!(fuse());
}
