//! Files are created with their final mode where that saves a chmod; the
//! umask must not leak into the result. A test binary of its own: the umask
//! is the process's.

mod apply_support;

use std::os::unix::fs::PermissionsExt;

use apply_support::*;
use rustix::fs::Mode;
use strata_archive::apply::Resolution;
use strata_archive::ApplierOptions;

#[test]
fn modes_are_the_headers_whatever_the_umask() {
    rustix::process::umask(Mode::from_raw_mode(0o077));
    let dir = tempfile::tempdir().unwrap();
    let (uid, gid) = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    let modes = [0o644, 0o755, 0o600, 0o777, 0o444, 0o000, 0o1755];
    let mut layer = L::new();
    for m in modes {
        layer = layer
            .file(&format!("f{m:o}"), b"content")
            .mode(m)
            .owner(uid, gid);
    }
    apply(
        dir.path(),
        &layer,
        ApplierOptions::default(),
        Resolution::Auto,
    )
    .unwrap();
    for m in modes {
        let p = dir.path().join(format!("f{m:o}"));
        let got = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(got, m, "{}: {got:o}", p.display());
        assert_eq!(std::fs::read(&p).unwrap(), b"content");
    }
}
