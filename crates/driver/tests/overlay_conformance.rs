//! The shared conformance suite on the overlay driver: kernel overlay, and
//! fuse-overlayfs as mount program. Every case runs on both; the cases on
//! changes expect what the reference answers for each (kernel overlay
//! reads changes from the upper directory, fuse-overlayfs compares trees).

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
