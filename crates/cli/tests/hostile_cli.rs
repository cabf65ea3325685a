//! Hostile and broken layers through the CLI: every case of one table runs
//! through `import-layer` and `applydiff` on vfs, overlay and btrfs (a
//! loop-backed btrfs made here), and each run proves that nothing outside
//! the layer changed: a snapshot of the whole test directory (a victim
//! directory beside the store, a sibling `<layer>-evil` directory, the
//! store itself) taken before and after differs only inside the layer and
//! in the store's own record files.
//!
//! Outcomes: `Refuse` cases must fail (and an import must leave no layer
//! behind), `Accept` cases must work (and pass their check), `Either`
//! cases may do either; whatever they do, nothing escapes.
//!
//! Duplicate entries: the last member wins (as GNU tar does; the reference
//! refuses exact duplicates); `duplicate_last_wins` checks it. Such layers,
//! and layers whose whiteouts remove their own members, keep no tar-split
//! record: their `diff` is the driver's and equals the layer's tree.

mod common;
mod robust_support;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{is_root, Env, Lookups};
use robust_support::*;

/// What the layer tar of a case may see of its surroundings.
struct Ctx {
    /// The victim directory (absolute).
    victim: PathBuf,
    /// A sibling of the layer's home: `<home>-evil` (absolute).
    sib: PathBuf,
    /// The layer's ID.
    id: String,
    /// A unique name for host paths that must not appear (`/run/<x>`).
    host_marker: String,
}

impl Ctx {
    fn v(&self) -> String {
        self.victim.to_string_lossy().into_owned()
    }
    /// `../` enough times to reach `/` from anywhere, then the victim.
    fn up_v(&self) -> String {
        format!("{}{}", "../".repeat(24), &self.v()[1..])
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    Refuse,
    Accept,
    Either,
}

type Build = fn(&Ctx) -> Vec<u8>;
type Check = fn(&Path, &Ctx) -> Result<(), String>;

struct Case {
    class: &'static str,
    name: &'static str,
    lower: Option<Build>,
    tar: Build,
    expect: Expect,
    check: Option<Check>,
    /// For refused cases, a substring the error must contain (any of).
    message: &'static [&'static str],
}

const EOF_OR_HEADER: &[&str] = &["invalid tar header", "unexpected EOF"];

fn t(f: impl FnOnce(&mut RawTar)) -> Vec<u8> {
    let mut b = RawTar::new();
    f(&mut b);
    b.finish()
}

fn case(class: &'static str, name: &'static str, expect: Expect, tar: Build) -> Case {
    Case {
        class,
        name,
        lower: None,
        tar,
        expect,
        check: None,
        message: &[],
    }
}

fn with_check(mut c: Case, check: Check) -> Case {
    c.check = Some(check);
    c
}

fn junk(name: &'static str, tar: Build) -> Case {
    Case {
        message: EOF_OR_HEADER,
        ..case("junk", name, Expect::Refuse, tar)
    }
}

fn pipe_through(prog: &str, data: &[u8]) -> Vec<u8> {
    let mut c = Command::new(prog)
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut i = c.stdin.take().unwrap();
    let d = data.to_vec();
    let h = std::thread::spawn(move || i.write_all(&d));
    let o = c.wait_with_output().unwrap();
    let _ = h.join();
    o.stdout
}

fn junk_bytes() -> Vec<u8> {
    // Deterministic noise (xorshift), not a tar header anywhere.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..8192)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn good_tar() -> Vec<u8> {
    t(|b| {
        b.dir("d/", 0o755)
            .file("d/f", &[b'x'; 3000], 0o644)
            .file("g", b"g", 0o644);
    })
}

fn xattrs_of(p: &Path) -> Vec<String> {
    let mut buf = vec![0u8; 4096];
    match rustix::fs::llistxattr(p, &mut buf) {
        Ok(n) => buf[..n]
            .split(|&c| c == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// No entry of the layer carries an overlay or override xattr.
fn no_overlay_xattrs(layer: &Path, _: &Ctx) -> Result<(), String> {
    for p in snapshot(layer, &[]).keys() {
        for x in xattrs_of(p) {
            if x.starts_with("trusted.overlay.")
                || x.starts_with("user.overlay.")
                || x == "user.containers.override_stat"
            {
                return Err(format!("{} has xattr {x}", p.display()));
            }
        }
    }
    Ok(())
}

fn no_sockets(layer: &Path, _: &Ctx) -> Result<(), String> {
    for p in snapshot(layer, &[]).keys() {
        if std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket()) {
            return Err(format!("socket {} created", p.display()));
        }
    }
    Ok(())
}

fn cases() -> Vec<Case> {
    use Expect::*;
    let mut v = vec![
        // Names with `..`.
        case("dotdot", "leading", Either, |_| {
            t(|b| {
                b.file("../escape", b"pwned", 0o644);
            })
        }),
        case("dotdot", "inner", Either, |_| {
            t(|b| {
                b.dir("a/", 0o755).file("a/../../escape", b"pwned", 0o644);
            })
        }),
        case("dotdot", "after_absolute", Either, |_| {
            t(|b| {
                b.file("/../escape", b"pwned", 0o644);
            })
        }),
        case("dotdot", "to_victim", Either, |c| {
            t(|b| {
                b.file(&format!("{}/secret", c.up_v()), b"pwned", 0o644);
            })
        }),
        case("dotdot", "bare_dir", Either, |_| {
            t(|b| {
                b.dir("..", 0o777);
            })
        }),
        case("dotdot", "bare_file", Refuse, |_| {
            t(|b| {
                b.file("..", b"pwned", 0o644);
            })
        }),
        case("dotdot", "sibling_via_dotdot", Either, |c| {
            t(|b| {
                b.file(&format!("../{}-evil/f", c.id), b"pwned", 0o644)
                    .file(&format!("../../{}-evil/f", c.id), b"pwned", 0o644);
            })
        }),
        with_check(
            case("dotdot", "dotdot_prefix_names_ok", Accept, |_| {
                t(|b| {
                    b.file("..gitme", b"ok", 0o644)
                        .dir("a..b/", 0o755)
                        .file("a..b/...", b"ok", 0o644);
                })
            }),
            |l, _| exists_all(l, &["..gitme", "a..b/..."]),
        ),
        // Absolute names.
        with_check(
            case("absolute", "root_relative", Either, |_| {
                t(|b| {
                    b.file("/etc-abs", b"in layer", 0o644);
                })
            }),
            |l, _| if_present_file(l, "etc-abs"),
        ),
        case("absolute", "victim_path", Either, |c| {
            t(|b| {
                b.file(&format!("{}/secret", c.v()), b"pwned", 0o644);
            })
        }),
        case("absolute", "double_slash", Either, |c| {
            t(|b| {
                b.file(&format!("/{}/new", c.v()), b"pwned", 0o644);
            })
        }),
        // Symlink, then write through it.
        case("symlink_write", "relative_up", Either, |c| {
            t(|b| {
                b.symlink("l", &c.up_v()).file("l/secret", b"pwned", 0o644);
            })
        }),
        case("symlink_write", "absolute", Either, |c| {
            t(|b| {
                b.symlink("l", &c.v())
                    .file("l/secret", b"pwned", 0o644)
                    .file("l/new", b"pwned", 0o644);
            })
        }),
        case("symlink_write", "absolute_mkdir", Either, |c| {
            t(|b| {
                b.symlink("l", &c.v())
                    .dir("l/newdir/", 0o777)
                    .file("l/newdir/x", b"p", 0o644);
            })
        }),
        case("symlink_write", "file_symlink_overwrite", Either, |c| {
            t(|b| {
                b.symlink("s", &format!("{}/secret", c.v()))
                    .file("s", b"pwned", 0o644);
            })
        }),
        case("symlink_write", "chain", Either, |c| {
            t(|b| {
                b.dir("d1/", 0o755)
                    .dir("d1/d2/", 0o755)
                    .symlink("d1/d2/s1", "..")
                    .symlink("d1/s2", "d2/s1/..")
                    .symlink("s3", "d1/s2/..")
                    .symlink("s4", &format!("s3/{}", c.up_v()))
                    .file("s4/secret", b"pwned", 0o644);
            })
        }),
        case("symlink_write", "sibling_prefix", Either, |c| {
            t(|b| {
                b.symlink("l", &c.sib.to_string_lossy())
                    .file("l/f", b"pwned", 0o644)
                    .file("l/new", b"p", 0o644);
            })
        }),
        // Hard links to outside.
        case("hardlink_out", "relative", Either, |c| {
            t(|b| {
                b.hardlink("h", &format!("{}/secret", c.up_v()), 0o777)
                    .file("h", b"pwned", 0o644);
            })
        }),
        case("hardlink_out", "absolute", Either, |c| {
            t(|b| {
                b.hardlink("h", &format!("{}/secret", c.v()), 0o777);
            })
        }),
        case("hardlink_out", "via_symlinked_dir", Either, |c| {
            t(|b| {
                b.symlink("l", &c.v()).hardlink("h", "l/secret", 0o777);
            })
        }),
        case("hardlink_out", "sibling_prefix", Either, |c| {
            t(|b| {
                b.hardlink("h", &format!("{}/f", c.sib.to_string_lossy()), 0o777);
            })
        }),
        case("hardlink_out", "then_write", Either, |c| {
            t(|b| {
                b.symlink("l", &c.v())
                    .hardlink("h", "l/secret", 0o644)
                    .file("l/secret", b"pwned", 0o644);
            })
        }),
        // chmod/chown through a hard link to a symlink.
        case("chmod_follow", "hardlink_to_abs_symlink", Either, |c| {
            t(|b| {
                b.symlink("s", &format!("{}/secret", c.v()));
                b.owner(77, 77).hardlink("h", "s", 0o777);
            })
        }),
        case("chmod_follow", "hardlink_to_rel_symlink", Either, |c| {
            t(|b| {
                b.symlink("s", &format!("{}/secret", c.up_v()));
                b.owner(77, 77).hardlink("h", "s", 0o777);
            })
        }),
        case("chmod_follow", "dir_over_symlink", Either, |c| {
            t(|b| {
                b.symlink("d", &c.v());
                b.owner(77, 77).dir("d/", 0o777);
            })
        }),
        // Whiteout names.
        case("whiteout", "dot", Refuse, |_| {
            t(|b| {
                b.file(".wh..", b"", 0o644);
            })
        }),
        case("whiteout", "dotdot", Refuse, |_| {
            t(|b| {
                b.file(".wh...", b"", 0o644);
            })
        }),
        case("whiteout", "bare", Refuse, |_| {
            t(|b| {
                b.file(".wh.", b"", 0o644);
            })
        }),
        case("whiteout", "dotdot_in_subdir", Refuse, |_| {
            t(|b| {
                b.dir("a/", 0o755).file("a/.wh...", b"", 0o644);
            })
        }),
        case("whiteout", "through_abs_symlink", Either, |c| {
            t(|b| {
                b.symlink("l", &c.v()).file("l/.wh.secret", b"", 0o644);
            })
        }),
        case("whiteout", "through_rel_symlink", Either, |c| {
            t(|b| {
                b.symlink("l", &c.up_v()).file("l/.wh.secret", b"", 0o644);
            })
        }),
        case("whiteout", "opaque_through_symlink", Either, |c| {
            t(|b| {
                b.symlink("l", &c.v()).file("l/.wh..wh..opq", b"", 0o644);
            })
        }),
        case("whiteout", "escaping_name", Either, |c| {
            t(|b| {
                b.file(&format!("{}/.wh.secret", c.up_v()), b"", 0o644);
            })
        }),
        case("whiteout", "root_opaque", Either, |_| {
            t(|b| {
                b.file(".wh..wh..opq", b"", 0o644).file("x", b"x", 0o644);
            })
        }),
        case("whiteout", "root_dot_slash", Refuse, |_| {
            t(|b| {
                b.file("./.wh..", b"", 0o644);
            })
        }),
        // The root entry.
        case("root_entry", "symlink_abs", Refuse, |c| {
            t(|b| {
                b.symlink("./", &c.v())
                    .file("secret", b"pwned", 0o644)
                    .file("new", b"p", 0o644);
            })
        }),
        case("root_entry", "symlink_dot", Refuse, |c| {
            t(|b| {
                b.symlink(".", &c.up_v()).file("secret", b"pwned", 0o644);
            })
        }),
        case("root_entry", "regular_file", Refuse, |_| {
            t(|b| {
                b.file(".", b"pwned", 0o644).file("after", b"x", 0o644);
            })
        }),
        case("root_entry", "mode_owner", Either, |_| {
            t(|b| {
                b.owner(77, 77).dir("./", 0o777);
            })
        }),
        // Overlay xattr injection.
        with_check(
            case("xattr_inject", "trusted_overlay_opaque", Either, |_| {
                t(|b| {
                    b.pax(&[("SCHILY.xattr.trusted.overlay.opaque", b"y")])
                        .dir("d/", 0o755);
                })
            }),
            no_overlay_xattrs,
        ),
        with_check(
            case("xattr_inject", "trusted_overlay_redirect", Either, |c| {
                let r = c.v();
                let mut b = RawTar::new();
                b.pax(&[("SCHILY.xattr.trusted.overlay.redirect", r.as_bytes())])
                    .dir("d/", 0o755);
                b.finish()
            }),
            no_overlay_xattrs,
        ),
        with_check(
            case(
                "xattr_inject",
                "trusted_overlay_metacopy_origin",
                Either,
                |_| {
                    t(|b| {
                        b.pax(&[
                            ("SCHILY.xattr.trusted.overlay.metacopy", b""),
                            ("SCHILY.xattr.trusted.overlay.origin", b"\0\xfb\x21\x00"),
                        ])
                        .file("f", b"data", 0o644);
                    })
                },
            ),
            no_overlay_xattrs,
        ),
        with_check(
            case("xattr_inject", "user_overlay", Either, |_| {
                t(|b| {
                    b.pax(&[("SCHILY.xattr.user.overlay.opaque", b"y")])
                        .dir("d/", 0o755);
                    b.pax(&[("SCHILY.xattr.user.overlay.redirect", b"/etc")])
                        .dir("e/", 0o755);
                })
            }),
            no_overlay_xattrs,
        ),
        with_check(
            case("xattr_inject", "override_stat", Either, |_| {
                t(|b| {
                    b.pax(&[("SCHILY.xattr.user.containers.override_stat", b"0:0:4755")])
                        .file("f", b"x", 0o644);
                })
            }),
            no_overlay_xattrs,
        ),
        // Devices, setuid, sockets.
        case("device", "absurd_char", Refuse, |_| {
            t(|b| {
                b.member(b"c", CHR, 0o600, b"", b"", (0o7777777, 0o7777777));
            })
        }),
        case("device", "absurd_block", Refuse, |_| {
            t(|b| {
                b.member(b"b", BLK, 0o600, b"", b"", (4095, 0o7777777));
            })
        }),
        case("device", "max_legit", Accept, |_| {
            t(|b| {
                b.member(b"c", CHR, 0o600, b"", b"", (4095, 1_048_575));
            })
        }),
        with_check(
            case("setuid", "kept_after_chown", Accept, |_| {
                t(|b| {
                    b.owner(1000, 1000).file("su", b"#!/bin/sh\n", 0o4755);
                    b.owner(0, 1000).file("sg", b"#!/bin/sh\n", 0o2755);
                    b.owner(0, 0).dir("tmp/", 0o1777);
                })
            }),
            |l, _| {
                mode_is(l, "su", 0o4755, Some(1000))?;
                mode_is(l, "sg", 0o2755, Some(0))?;
                mode_is(l, "tmp", 0o1777, None)
            },
        ),
        with_check(
            case("socket", "typeflag_s", Either, |_| {
                t(|b| {
                    b.member(b"sock", SOCK, 0o777, b"", b"", (0, 0))
                        .file("after", b"x", 0o644);
                })
            }),
            no_sockets,
        ),
        with_check(
            case("socket", "fifo_ok", Either, |_| {
                t(|b| {
                    b.member(b"fifo", FIFO, 0o644, b"", b"", (0, 0));
                })
            }),
            no_sockets,
        ),
        // Tricky but legitimate.
        with_check(
            Case {
                lower: Some(|_| {
                    t(|b| {
                        b.dir("var/", 0o755)
                            .symlink("var/run", "/run")
                            .dir("run/", 0o755);
                    })
                }),
                ..case("tricky_legit", "abs_symlink_in_lower", Accept, |c| {
                    let mut b = RawTar::new();
                    b.file(&format!("var/run/{}", c.host_marker), b"in layer", 0o644);
                    b.finish()
                })
            },
            |l, c| {
                if Path::new("/run").join(&c.host_marker).exists() {
                    return Err("wrote into the host's /run".into());
                }
                let a = l.join("run").join(&c.host_marker);
                let b = l.join("var/run").join(&c.host_marker);
                if a.is_file() || b.is_file() {
                    Ok(())
                } else {
                    Err("file not in the layer".into())
                }
            },
        ),
        with_check(
            case("tricky_legit", "abs_symlink_same_layer", Accept, |c| {
                let mut b = RawTar::new();
                b.dir("var/", 0o755)
                    .dir("run/", 0o755)
                    .symlink("var/run", "/run");
                b.file(&format!("var/run/{}", c.host_marker), b"in layer", 0o644);
                b.finish()
            }),
            |l, c| {
                if Path::new("/run").join(&c.host_marker).exists() {
                    return Err("wrote into the host's /run".into());
                }
                exists_all(l, &[&format!("run/{}", c.host_marker)])
            },
        ),
        with_check(
            case("tricky_legit", "hardlink_to_symlink", Accept, |_| {
                t(|b| {
                    b.symlink("s", "target").hardlink("h", "s", 0o777);
                })
            }),
            |l, _| match std::fs::symlink_metadata(l.join("h")) {
                Ok(m) if m.file_type().is_symlink() => Ok(()),
                other => Err(format!("h is not a symlink: {other:?}")),
            },
        ),
        with_check(
            case("tricky_legit", "dir_file_dir", Accept, |_| {
                t(|b| {
                    b.dir("d/", 0o755)
                        .file("d/f", b"1", 0o644)
                        .file("d", b"file now", 0o644)
                        .dir("d/", 0o700)
                        .file("d/g", b"2", 0o644);
                })
            }),
            |l, _| {
                mode_is(l, "d", 0o700, None)?;
                exists_all(l, &["d/g"])
            },
        ),
        with_check(
            // A whiteout removing a member of its own layer.
            case("tricky_legit", "self_whiteout", Accept, |_| {
                t(|b| {
                    b.file("a", b"gone", 0o644)
                        .file("k", b"kept", 0o644)
                        .file(".wh.a", b"", 0o644);
                })
            }),
            // Gone, or (overlay form) stored as a whiteout device.
            |l, _| match (l.join("a").symlink_metadata(), std::fs::read(l.join("k"))) {
                (Err(_), Ok(k)) if k == b"kept" => Ok(()),
                (Ok(a), Ok(k))
                    if a.file_type().is_char_device() && a.rdev() == 0 && k == b"kept" =>
                {
                    Ok(())
                }
                other => Err(format!("a/k: {other:?}")),
            },
        ),
        with_check(
            case("tricky_legit", "duplicate_last_wins", Accept, |_| {
                t(|b| {
                    b.file("f", b"first", 0o600).file("f", b"second", 0o644);
                })
            }),
            |l, _| match std::fs::read(l.join("f")) {
                Ok(d) if d == b"second" => mode_is(l, "f", 0o644, None),
                other => Err(format!("f: {other:?}")),
            },
        ),
        with_check(
            case("tricky_legit", "long_pax_path_and_target", Accept, |_| {
                let mut b = RawTar::new();
                let comp = "p".repeat(200);
                let mut path = String::new();
                for _ in 0..15 {
                    path.push_str(&comp);
                    path.push('/');
                    b.pax(&[("path", path.as_bytes())]).dir(&path[..50], 0o755);
                }
                let f = format!("{path}file");
                b.pax(&[("path", f.as_bytes())])
                    .file("short", b"deep", 0o644);
                let target = "t".repeat(3000);
                b.pax(&[("linkpath", target.as_bytes())])
                    .symlink("longlink", "x");
                b.finish()
            }),
            |l, _| {
                let t = std::fs::read_link(l.join("longlink")).map_err(|e| e.to_string())?;
                if t.as_os_str().len() != 3000 {
                    return Err("link target cut".into());
                }
                let mut p = l.to_path_buf();
                for _ in 0..15 {
                    p.push("p".repeat(200));
                }
                // Too long for one path syscall: walk it with a chdir-free
                // check through /proc is overkill; count the depth instead.
                let deep = walk_depth(l, 0);
                if deep < 15 {
                    return Err(format!("depth {deep}"));
                }
                Ok(())
            },
        ),
        with_check(
            case("tricky_legit", "gnu_long_name_and_link", Accept, |_| {
                let mut b = RawTar::new();
                let name = format!("{}/{}", "g".repeat(150), "h".repeat(150));
                b.dir(&"g".repeat(99), 0o755);
                b.gnu_long_name(format!("{}/", "g".repeat(150)).as_bytes())
                    .dir("gdir/", 0o755);
                b.gnu_long_name(name.as_bytes())
                    .file("gfile", b"gnu", 0o644);
                b.gnu_long_link("k".repeat(500).as_bytes())
                    .symlink("klink", "x");
                b.finish()
            }),
            |l, _| {
                let name = format!("{}/{}", "g".repeat(150), "h".repeat(150));
                exists_all(l, &[&name])?;
                let t = std::fs::read_link(l.join("klink")).map_err(|e| e.to_string())?;
                if t.as_os_str().len() == 500 {
                    Ok(())
                } else {
                    Err(format!("klink -> {t:?}"))
                }
            },
        ),
        // Junk and truncation.
        junk("random", |_| junk_bytes()),
        junk("gzip", |_| common::gzip(&junk_bytes())),
        junk("bzip2", |_| pipe_through("bzip2", &junk_bytes())),
        junk("xz", |_| pipe_through("xz", &junk_bytes())),
        junk("zstd", |_| pipe_through("zstd", &junk_bytes())),
        junk("truncated_data", |_| {
            let v = good_tar();
            v[..512 + 1000].to_vec()
        }),
        junk("truncated_header", |_| {
            let v = good_tar();
            v[..512 * 3 + 3072 + 300].to_vec()
        }),
        junk("truncated_gzip", |_| {
            let v = common::gzip(&good_tar());
            v[..v.len() / 2].to_vec()
        }),
        junk("truncated_zstd", |_| {
            let v = pipe_through("zstd", &good_tar());
            v[..v.len() - 8].to_vec()
        }),
        junk("bad_checksum", |_| {
            let mut v = good_tar();
            v[148] = b'7';
            v[149] = b'7';
            v
        }),
    ];
    for c in &mut v {
        if c.class == "whiteout" && c.expect == Expect::Refuse {
            c.message = &[".wh."];
        }
    }
    v
}

fn walk_depth(p: &Path, d: usize) -> usize {
    let Ok(rd) = std::fs::read_dir(p) else {
        return d;
    };
    let mut best = d;
    for e in rd.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) && e.file_name().len() == 200 {
            best = best.max(walk_depth(&e.path(), d + 1));
        }
    }
    best
}

fn exists_all(l: &Path, names: &[&str]) -> Result<(), String> {
    for n in names {
        if std::fs::symlink_metadata(l.join(n)).is_err() {
            return Err(format!("{n} missing"));
        }
    }
    Ok(())
}

fn if_present_file(l: &Path, n: &str) -> Result<(), String> {
    match std::fs::symlink_metadata(l.join(n)) {
        Ok(m) if !m.is_file() => Err(format!("{n} is not a file")),
        _ => Ok(()),
    }
}

fn mode_is(l: &Path, n: &str, mode: u32, uid: Option<u32>) -> Result<(), String> {
    let m = std::fs::symlink_metadata(l.join(n)).map_err(|e| format!("{n}: {e}"))?;
    if m.permissions().mode() & 0o7777 != mode {
        return Err(format!(
            "{n} mode {:o}, want {mode:o}",
            m.permissions().mode()
        ));
    }
    if let Some(u) = uid {
        if m.uid() != u {
            return Err(format!("{n} uid {}, want {u}", m.uid()));
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Via {
    Import,
    ApplyDiff,
}

/// Makes the victim tree: files, a dir, odd owners and modes.
fn make_victim(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("secret"), b"host secret\n").unwrap();
    std::fs::write(dir.join("sub/file"), b"host file\n").unwrap();
    std::fs::set_permissions(dir.join("secret"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::chown(dir.join("secret"), Some(4321), Some(4321)).unwrap();
}

fn run_driver(driver: &str, lookups: Lookups) {
    let e = Env::with_lookups(driver, lookups);
    let img = e.dir.path().join("btrfs.img");
    let _fs = if driver == "btrfs" {
        match loop_fs(&img, &e.graph(), "btrfs", 300) {
            Some(f) => Some(f),
            None => return,
        }
    } else {
        None
    };
    let victim = e.dir.path().join("victim");
    make_victim(&victim);
    // Warm up: the store's own files exist before the first snapshot.
    e.ok(&["layers"]);
    let graph = e.graph();
    let marker = format!("strata-hostile-{}", std::process::id());
    let mut failures = Vec::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut outcomes = Vec::new();
    for (i, c) in cases().iter().enumerate() {
        for via in [Via::Import, Via::ApplyDiff] {
            let id = format!("c{i}{}", if via == Via::Import { "i" } else { "a" });
            let label = format!("{driver}/{:?}/{}/{}", via, c.class, c.name);
            let parent = c.lower.map(|lower| {
                let pid = format!("{id}-lower");
                e.ok_in(&["import-layer", "--id", &pid], &lower(&dummy_ctx()));
                pid
            });
            if via == Via::ApplyDiff {
                let mut args = vec!["create-layer", "--id", &id];
                if let Some(p) = &parent {
                    args.push(p);
                }
                e.ok(&args);
            }
            let home = layer_home(&graph, driver, &id);
            let sib = PathBuf::from(format!("{}-evil", home.display()));
            std::fs::create_dir_all(&sib).unwrap();
            std::fs::write(sib.join("f"), b"sibling\n").unwrap();
            let ctx = Ctx {
                victim: victim.clone(),
                sib: sib.clone(),
                id: id.clone(),
                host_marker: marker.clone(),
            };
            let input = (c.tar)(&ctx);
            let skip = vec![img.clone()];
            let before = snapshot(e.dir.path(), &skip);
            let layers_before = e.ok(&["layers"]);
            let mut args = match via {
                Via::Import => vec!["import-layer", "--id", &id],
                Via::ApplyDiff => vec!["applydiff", &id],
            };
            if via == Via::Import {
                if let Some(p) = &parent {
                    args.push(p);
                }
            }
            let out = e.strata_in(&args, &input);
            let ok = out.status.success();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            let after = snapshot(e.dir.path(), &skip);
            let layer_kept = ok || via == Via::ApplyDiff;
            let allowed = |p: &Path| allowed_change(p, &e, driver, &id, layer_kept);
            for d in diff_snapshots(&before, &after, &allowed) {
                failures.push(format!("{label}: outside the layer: {d}"));
            }
            if Path::new("/run").join(&marker).exists() {
                let _ = std::fs::remove_file(Path::new("/run").join(&marker));
                failures.push(format!("{label}: wrote /run/{marker}"));
            }
            match (c.expect, ok) {
                (Expect::Refuse, true) => failures.push(format!("{label}: accepted")),
                (Expect::Accept, false) => failures.push(format!("{label}: refused: {stderr}")),
                _ => {}
            }
            if !ok {
                if stderr.trim().is_empty() {
                    failures.push(format!("{label}: failed without a message"));
                }
                if !c.message.is_empty() && !c.message.iter().any(|m| stderr.contains(m)) {
                    failures.push(format!("{label}: message {stderr:?} lacks {:?}", c.message));
                }
                if via == Via::Import {
                    if home.exists() {
                        failures.push(format!("{label}: layer dir left behind"));
                    }
                    let now = e.ok(&["layers"]);
                    if now != layers_before {
                        failures.push(format!("{label}: layers changed: {now}"));
                    }
                }
            }
            if ok {
                if let Some(check) = c.check {
                    if let Err(m) = check(&layer_dir(&graph, driver, &id), &ctx) {
                        failures.push(format!("{label}: check: {m}"));
                    }
                }
            }
            outcomes.push(format!(
                "{label}: {}",
                if ok {
                    "accepted".to_string()
                } else {
                    format!("refused ({})", stderr.trim())
                }
            ));
            *counts.entry(c.class).or_default() += 1;
            let _ = std::fs::remove_dir_all(&sib);
        }
    }
    for o in &outcomes {
        eprintln!("{o}");
    }
    eprintln!("{driver}: cases per class (x2 = import-layer + applydiff): {counts:?}");
    // The store is still sound: every listed layer diffs to a valid tar.
    // Layers whose tar replaced or removed one of its own members keep no
    // tar-split record (its replay would miss the first member's content):
    // their diff is the driver's, and holds exactly the layer's tree.
    let replaced: Vec<String> = cases()
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            matches!(
                c.name,
                "dir_file_dir" | "duplicate_last_wins" | "self_whiteout"
            )
        })
        .flat_map(|(i, _)| [format!("c{i}i"), format!("c{i}a")])
        .collect();
    let v = e.layers_json();
    for l in v.as_array().unwrap() {
        let id = l["id"].as_str().unwrap();
        assert!(
            l.get("flags").and_then(|f| f.get("incomplete")).is_none(),
            "{id} incomplete"
        );
        let o = e.strata(&["diff", "-u", id]);
        if !o.status.success() {
            failures.push(format!(
                "{driver}: diff of {id} fails: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
            continue;
        }
        let mut members = match tar_members(&o.stdout) {
            Ok(m) => m,
            Err(m) => {
                failures.push(format!("{driver}: diff of {id} is no valid tar: {m}"));
                continue;
            }
        };
        if replaced.iter().any(|r| r == id) {
            if graph
                .join(format!("{driver}-layers/{id}.tar-split.gz"))
                .exists()
            {
                failures.push(format!("{driver}: {id} kept a tar-split record"));
            }
            let m = common::first_line(&e.ok(&["mount", id]));
            let tree = tree_members(Path::new(&m));
            e.ok(&["unmount", id]);
            // Whiteouts (an overlay layer keeps its deletions) name paths
            // the tree does not have.
            members.retain(|p, _| {
                let name = Path::new(p).file_name().unwrap().to_string_lossy();
                match name.strip_prefix(".wh.") {
                    Some(gone) => {
                        let gone = Path::new(p).with_file_name(gone);
                        assert!(!tree.contains_key(&*gone.to_string_lossy()), "{p}");
                        false
                    }
                    None => true,
                }
            });
            if members != tree {
                failures.push(format!(
                    "{driver}: diff of {id} differs from its tree:\n{members:#?}\n{tree:#?}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn dummy_ctx() -> Ctx {
    Ctx {
        victim: PathBuf::from("/nonexistent"),
        sib: PathBuf::from("/nonexistent"),
        id: String::new(),
        host_marker: String::new(),
    }
}

/// Paths that may change when a command touched layer `id`.
fn allowed_change(p: &Path, e: &Env, driver: &str, id: &str, layer_kept: bool) -> bool {
    let graph = e.graph();
    if p.starts_with(e.run_root()) {
        return true;
    }
    let home = layer_home(&graph, driver, id);
    // Ancestors of places that legitimately change (their mtime moves).
    if home.starts_with(p) || graph.join(format!("{driver}-layers")).starts_with(p) {
        return true;
    }
    // vfs builds a layer in its staging directory and renames it into
    // place (or moves a refused one there to remove it): the directory's
    // time moves, nothing may stay in it.
    if driver == "vfs" && p == graph.join("vfs/tmp") {
        return true;
    }
    // The overlay driver rewrites its probe result at every start.
    if driver == "overlay"
        && (p == graph.join("overlay/l") || p == graph.join("overlay/.has-mount-program"))
    {
        return true;
    }
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if p.parent() == Some(&graph.join(format!("{driver}-layers"))) {
        if name == "layers.json" || name == "layers.lock" {
            return true;
        }
        if layer_kept && name == format!("{id}.tar-split.gz") {
            return true;
        }
    }
    if !layer_kept {
        return false;
    }
    if p.starts_with(&home) {
        return true;
    }
    if driver == "overlay" && p.parent() == Some(&graph.join("overlay/l")) {
        return std::fs::read_link(p).is_ok_and(|t| t == Path::new("..").join(id).join("diff"));
    }
    false
}

#[test]
fn privileged_hostile_vfs() {
    if is_root() {
        run_driver("vfs", Lookups::Fast);
    }
}

#[test]
fn privileged_hostile_overlay() {
    if is_root() {
        run_driver("overlay", Lookups::Fast);
    }
}

#[test]
fn privileged_hostile_btrfs() {
    if is_root() {
        run_driver("btrfs", Lookups::Fast);
    }
}

/// The table again with the confined open's fallback walk forced in
/// every strata process (one driver per kind of diff getter: vfs reads
/// the layer's tree, overlay its upper directory).
#[test]
fn privileged_hostile_vfs_forced_walk() {
    if is_root() {
        run_driver("vfs", Lookups::Walk);
    }
}

#[test]
fn privileged_hostile_overlay_forced_walk() {
    if is_root() {
        run_driver("overlay", Lookups::Walk);
    }
}

/// The snapshot comparison itself notices a write, a chmod, a chown, a
/// new file and a removal (so the tests above can fail).
#[test]
fn snapshot_notices_every_change() {
    let d = tempfile::tempdir_in("/var/tmp").unwrap();
    let v = d.path().join("victim");
    std::fs::create_dir_all(v.join("sub")).unwrap();
    std::fs::write(v.join("secret"), b"a").unwrap();
    std::fs::write(v.join("sub/file"), b"b").unwrap();
    let none = |_: &Path| false;
    let changes: [fn(&Path); 4] = [
        |v| std::fs::write(v.join("secret"), b"x").unwrap(),
        |v| {
            std::fs::set_permissions(v.join("secret"), std::fs::Permissions::from_mode(0o777))
                .unwrap()
        },
        |v| std::fs::write(v.join("sub/new"), b"").unwrap(),
        |v| std::fs::remove_file(v.join("sub/file")).unwrap(),
    ];
    for change in changes {
        let before = snapshot(d.path(), &[]);
        change(&v);
        let after = snapshot(d.path(), &[]);
        assert!(!diff_snapshots(&before, &after, &none).is_empty());
    }
}
