//! Differential runs of image and container commands: the same commands
//! on two stores, one driven by the reference and one by strata, with
//! outputs compared after what must differ (random IDs, times, the store's
//! path) is replaced by placeholders.

use std::collections::HashMap;
use std::process::Output;

use strata_testsupport::{current_test, LoopFs, LoopOptions};

use super::Env;

/// Replaces a store's own path, random IDs and times in outputs. Random
/// IDs are numbered in order of first appearance, so the same sequence of
/// commands gives the same placeholders on both stores; a 64-hex string
/// after `sha256:` is a digest of content and stays as it is.
pub struct Norm {
    dir: String,
    ids: HashMap<String, usize>,
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// The length of an RFC 3339 time at the start of `s`, if one is there.
fn time_len(s: &[u8]) -> Option<usize> {
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| s.get(i).is_some_and(u8::is_ascii_digit));
    let at = |i: usize, c: u8| s.get(i) == Some(&c);
    if !(digits(0..4)
        && at(4, b'-')
        && digits(5..7)
        && at(7, b'-')
        && digits(8..10)
        && at(10, b'T')
        && digits(11..13)
        && at(13, b':')
        && digits(14..16)
        && at(16, b':')
        && digits(17..19))
    {
        return None;
    }
    let mut i = 19;
    if at(i, b'.') {
        i += 1;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    if at(i, b'Z') {
        return Some(i + 1);
    }
    if (at(i, b'+') || at(i, b'-'))
        && digits(i + 1..i + 3)
        && at(i + 3, b':')
        && digits(i + 4..i + 6)
    {
        return Some(i + 6);
    }
    None
}

impl Norm {
    /// A normaliser for one store.
    pub fn new(env: &Env) -> Self {
        Self {
            dir: env.dir.path().to_string_lossy().into_owned(),
            ids: HashMap::new(),
        }
    }

    /// `s` with placeholders.
    pub fn apply(&mut self, s: &str) -> String {
        let s = s.replace(&self.dir, "<DIR>");
        let b = s.as_bytes();
        let mut out = String::with_capacity(s.len());
        let mut i = 0;
        while i < b.len() {
            if let Some(n) = time_len(&b[i..]) {
                out.push_str("<TIME>");
                i += n;
                continue;
            }
            let boundary = i == 0 || !b[i - 1].is_ascii_alphanumeric();
            let run = b[i..].iter().take_while(|c| is_hex(**c)).count();
            let end_ok = b.get(i + run).is_none_or(|c| !c.is_ascii_alphanumeric());
            if boundary && run == 64 && end_ok && !s[..i].ends_with("sha256:") {
                let id = &s[i..i + 64];
                let n = self.ids.len();
                let k = *self.ids.entry(id.to_string()).or_insert(n);
                out.push_str(&format!("<ID{k}>"));
                i += 64;
                continue;
            }
            let c = s[i..].chars().next().unwrap_or('\0');
            out.push(c);
            i += c.len_utf8().max(1);
        }
        out
    }
}

/// A reference store and a strata store driven in step.
pub struct Pair {
    // Loop filesystems under the stores' graph roots, unmounted before the
    // stores' directories go (fields drop in order).
    fs: Vec<LoopFs>,
    /// The store the reference works on.
    pub r: Env,
    /// The store strata works on.
    pub s: Env,
    rn: Norm,
    sn: Norm,
    /// Differences found so far.
    pub problems: Vec<String>,
}

/// What a command printed and returned, normalised.
#[derive(Debug, PartialEq, Eq)]
pub struct Seen {
    /// Standard output.
    pub out: String,
    /// Standard error.
    pub err: String,
    /// Exit status.
    pub code: Option<i32>,
}

fn seen(o: &Output, n: &mut Norm) -> Seen {
    Seen {
        out: unordered(&n.apply(&String::from_utf8_lossy(&o.stdout))),
        err: n.apply(&String::from_utf8_lossy(&o.stderr)),
        code: o.status.code(),
    }
}

/// Sorts what the reference prints in Go's (random) map order: the
/// `ITEM: true|false` lines of `exists` and runs of digest lines.
fn unordered(out: &str) -> String {
    let lines: Vec<&str> = out.split_inclusive('\n').collect();
    let exists = !lines.is_empty()
        && lines
            .iter()
            .all(|l| l.ends_with(": true\n") || l.ends_with(": false\n"));
    if exists {
        let mut v = lines;
        v.sort();
        return v.concat();
    }
    let mut v: Vec<&str> = Vec::with_capacity(lines.len());
    let digest = |l: &str| l.starts_with("Digest: ") || l.starts_with("\tdigest: ");
    let mut i = 0;
    while i < lines.len() {
        let run = lines[i..].iter().take_while(|l| digest(l)).count();
        if run > 1 {
            let mut d = lines[i..i + run].to_vec();
            d.sort();
            v.extend(d);
            i += run;
        } else {
            v.push(lines[i]);
            i += 1;
        }
    }
    v.concat()
}

impl Pair {
    /// Two fresh stores for `driver`.
    pub fn new(driver: &str) -> Self {
        let r = Env::new(driver);
        let s = Env::new(driver);
        let rn = Norm::new(&r);
        let sn = Norm::new(&s);
        Self {
            fs: Vec::new(),
            r,
            s,
            rn,
            sn,
            problems: Vec::new(),
        }
    }

    /// Two fresh btrfs stores, each graph root a btrfs of its own on a
    /// loop device (the image in the store's directory); `None` (having
    /// said why) when that cannot be made here and CI is unset.
    pub fn on_loop_btrfs() -> Option<Self> {
        let mut p = Self::new("btrfs");
        let test = current_test();
        for e in [&p.r, &p.s] {
            let img = e.dir.path().join("btrfs.img");
            let fs = LoopFs::at(&test, &img, &e.graph(), &LoopOptions::new("btrfs", 300))?;
            p.fs.push(fs);
        }
        Some(p)
    }

    /// Runs `args` (with `input` on stdin) on both stores and records any
    /// difference; returns strata's normalised result.
    pub fn run_in(&mut self, args: &[&str], input: &[u8]) -> Seen {
        let rargs: Vec<String> = args
            .iter()
            .map(|a| a.replace("{DIR}", &self.rn.dir))
            .collect();
        let sargs: Vec<String> = args
            .iter()
            .map(|a| a.replace("{DIR}", &self.sn.dir))
            .collect();
        let rargs: Vec<&str> = rargs.iter().map(String::as_str).collect();
        let sargs: Vec<&str> = sargs.iter().map(String::as_str).collect();
        let want = seen(&self.r.reference_in(&rargs, input), &mut self.rn);
        let got = seen(&self.s.strata_in(&sargs, input), &mut self.sn);
        if want != got {
            self.problems.push(format!(
                "{args:?}\n  reference: {want:?}\n  strata:    {got:?}"
            ));
        }
        got
    }

    /// [`Pair::run_in`] with empty stdin.
    pub fn run(&mut self, args: &[&str]) -> Seen {
        self.run_in(args, b"")
    }

    /// Compares a file of both stores (normalised), e.g.
    /// `root/vfs-images/images.json`.
    pub fn same_file(&mut self, rel: &str) {
        let read = |e: &Env| {
            std::fs::read_to_string(e.dir.path().join(rel)).unwrap_or_else(|e| format!("<{e}>"))
        };
        let want = self.rn.apply(&read(&self.r));
        let got = self.sn.apply(&read(&self.s));
        if want != got {
            self.problems
                .push(format!("{rel}\n  reference: {want}\n  strata:    {got}"));
        }
    }

    /// Compares the names of the entries of a directory of both stores.
    pub fn same_listing(&mut self, rel: &str) {
        let list = |e: &Env, n: &mut Norm| {
            let mut v: Vec<String> = std::fs::read_dir(e.dir.path().join(rel))
                .map(|rd| {
                    rd.flatten()
                        .map(|d| n.apply(&d.file_name().to_string_lossy()))
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        };
        let want = list(&self.r, &mut self.rn);
        let got = list(&self.s, &mut self.sn);
        if want != got {
            self.problems.push(format!(
                "ls {rel}\n  reference: {want:?}\n  strata:    {got:?}"
            ));
        }
    }

    /// Fails the test with every difference found.
    pub fn finish(self) {
        assert!(
            self.problems.is_empty(),
            "{} differences:\n{}",
            self.problems.len(),
            self.problems.join("\n")
        );
    }
}

/// Runs `args` on one store with both tools and returns both results,
/// normalised alike (strata reading what the other wrote, or the other
/// reading what strata wrote).
pub fn both_on(e: &Env, args: &[&str]) -> (Seen, Seen) {
    let mut n = Norm::new(e);
    let want = seen(&e.reference(args), &mut n);
    let mut n = Norm::new(e);
    let got = seen(&e.strata(args), &mut n);
    (want, got)
}
