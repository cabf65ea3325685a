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
    Suite::new("overlay", strata_driver::overlay::init)
}

fn fuse() -> Suite {
    let mut s = Suite::new("overlay", strata_driver::overlay::init);
    s.options = vec!["overlay.mount_program=/usr/bin/fuse-overlayfs".into()];
    s
}

mod kernel_overlay {
    use super::kernel;
    strata_driver::conformance_tests!(@cases kernel();
        privileged_create_empty => create_empty,
        privileged_base_layer => base_layer,
        privileged_child_inherits => child_inherits,
        privileged_template_copies => template_copies,
        privileged_deep_read_50 => deep_read_50,
        privileged_diff_apply_round_trip => diff_apply_round_trip,
        privileged_list_layers => list_layers,
        privileged_mount_ref_counting => mount_ref_counting,
        privileged_read_128_layers => read_128_layers,
        privileged_id_mapped_layer => id_mapped_layer,
        privileged_additional_image_store => additional_image_store,
    );
}

mod fuse_overlay {
    use super::fuse;
    strata_driver::conformance_tests!(fuse());
}
