//! Benchmark (not a test): reading + digests + tar-split of corpus layers,
//! and applying them, against `tar -tf`, `sha256sum` and `tar -xpf`.
//!
//! ```text
//! STRATA_CORPUS=/var/tmp/strata-corpus cargo bench -p strata-archive --bench read
//! target/release/deps/read-<hash> digest FILE      # one run, for /usr/bin/time -v
//! target/release/deps/read-<hash> apply FILE DIR
//! ```

use std::io::{BufReader, Write};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn digest(file: &Path) -> strata_archive::ApplyReport {
    let input = BufReader::with_capacity(1 << 20, std::fs::File::open(file).unwrap());
    let rec: Box<dyn Write + Send> = Box::new(std::io::sink());
    strata_archive::digest_layer(input, Some(rec)).unwrap()
}

fn apply(file: &Path, dir: &Path) -> strata_archive::ApplyReport {
    std::fs::create_dir_all(dir).unwrap();
    let root = std::fs::File::open(dir).unwrap();
    let input = BufReader::with_capacity(1 << 20, std::fs::File::open(file).unwrap());
    let rec: Box<dyn Write + Send> = Box::new(std::io::sink());
    strata_archive::apply_layer(
        std::os::fd::AsFd::as_fd(&root),
        input,
        strata_archive::ApplyOptions {
            tar_split: Some(rec),
            ..Default::default()
        },
    )
    .unwrap()
}

fn secs(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

fn shell(cmd: &str) -> f64 {
    secs(|| {
        let st = Command::new("sh").arg("-c").arg(cmd).status().unwrap();
        assert!(st.success(), "{cmd}");
    })
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["digest", f] => {
            let r = digest(Path::new(f));
            println!("{r:?}");
            return;
        }
        ["apply", f, d] => {
            let r = apply(Path::new(f), Path::new(d));
            println!("{r:?}");
            return;
        }
        _ => {}
    }
    let Ok(corpus) = std::env::var("STRATA_CORPUS") else {
        eprintln!("set STRATA_CORPUS to the corpus directory");
        return;
    };
    let corpus = Path::new(&corpus);
    let scratch = tempfile::Builder::new()
        .prefix("strata-bench-")
        .tempdir_in("/var/tmp")
        .unwrap();
    println!(
        "{:<24} {:>9} {:>10} {:>9} {:>9} {:>9} {:>10} {:>9}",
        "file", "MB", "ours s", "MB/s", "tar -tf", "sha256sum", "ours apply", "tar -xpf"
    );
    for name in [
        "debian-minbase.tar",
        "debian-minbase.tar.zst",
        "debian-minbase.tar.gz",
        "layer-npm.tar",
        "layer2.tar",
    ] {
        let f = corpus.join(name);
        if !f.exists() {
            continue;
        }
        let mb = std::fs::metadata(&f).unwrap().len() as f64 / 1e6;
        let p = f.display();
        // Warm the page cache so both sides read from memory.
        shell(&format!("cat {p} > /dev/null"));
        let ours = secs(|| {
            digest(&f);
        });
        let tar_tf = shell(&format!("tar -tf {p} > /dev/null"));
        let sha = shell(&format!("sha256sum {p} > /dev/null"));
        let a = scratch.path().join(format!("ours-{name}"));
        let ours_apply = secs(|| {
            apply(&f, &a);
        });
        let t = scratch.path().join(format!("tar-{name}"));
        std::fs::create_dir_all(&t).unwrap();
        let tar_x = shell(&format!("tar -xpf {p} -C {}", t.display()));
        shell(&format!("rm -rf {} {}", a.display(), t.display()));
        println!(
            "{name:<24} {mb:>9.1} {ours:>10.3} {:>9.0} {tar_tf:>9.3} {sha:>9.3} {ours_apply:>10.3} {tar_x:>9.3}",
            mb / ours
        );
    }
}
