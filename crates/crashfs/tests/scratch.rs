use std::ffi::OsStr;
use strata_crashfs::*;
#[test]
fn scratch() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let mnt = dir.path().join("m");
    std::fs::create_dir(&mnt).unwrap();
    let fs = CrashFs::mount(&mnt, Tree::default(), Model::Journal).unwrap();
    let script = std::env::var("SCRIPT").unwrap();
    let out = std::fs::File::create("/var/tmp/cf-scratch/out.txt").unwrap();
    let err = std::fs::File::create("/var/tmp/cf-scratch/err.txt").unwrap();
    let m2 = mnt.clone();
    let e = fs
        .run(
            OsStr::new("/bin/bash"),
            &[OsStr::new("-c"), OsStr::new(&script)],
            move |c| {
                c.current_dir(&m2).stdout(out).stderr(err);
            },
        )
        .unwrap();
    eprintln!("ended {e:?} counts {:?}", fs.counts());
    let t = fs.power_cut().unwrap();
    eprintln!("durable nodes {}", t.nodes.len());
}
