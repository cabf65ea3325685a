//! Judging the tools' answers: the same, a known fault of the reference
//! where strata gives the right answer, or a difference.
//!
//! Known faults of the reference, each checked against the trees before a
//! difference is accepted (README, "Differences"):
//! - [`RETARGET`]: a full-tree comparison (vfs, btrfs) misses a symlink
//!   whose target changed while its size and time did not, so `changes`,
//!   `diffsize` and `diff` leave it out and its diff, applied, keeps the old
//!   target.
//! - [`EMPTY_XATTR`]: applying a tar, the reference drops an xattr whose
//!   `SCHILY.xattr.*` record has an empty value (its tar reader takes an
//!   empty PAX value for "unset"); both tools export such records.
//! - [`ROOT_MODE`]: the reference's overlay makes a child layer's root
//!   with its parent's mode less setuid, setgid and sticky, and less the
//!   process umask (a 1777 root becomes 0755 one layer up); strata keeps
//!   the parent's mode, as every vfs and btrfs layer does.
//! - [`SETGID`], a consequence of [`ROOT_MODE`]: where the reference's
//!   child root lost the set-group-ID bit strata's kept, what the edits
//!   make in it takes the maker's group (and a directory no set-group-ID
//!   bit) in the reference's tree and the root's group (and the bit) in
//!   strata's, and so on down what is made inside. Such paths (the
//!   layer's *set-group-ID shadow*, [`setgid_shadow`]) are compared
//!   without their group and that bit; everything else about them must
//!   match.
//! - overlay's native diff looks paths up in the lower layers its own way
//!   (`overlay_model.rs`): [`NOTDIR`], [`FOLLOW`], [`OPAQUE`], [`LOOP`]
//!   (a lower path that is a symlink loop: its `stat` fails). A difference
//!   is known when the reference's answer is what its lookup gives and
//!   strata's what the parent's merged tree gives.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::overlay_model::{self, Lookup};
use super::snapshot::{self, Entry, Time, Tree};
use super::stack::{Layer, Pair};
use super::tarfacts::{self, Member};
use super::tools::CmdResult;
use super::Variant;

/// The verdict on one comparison.
pub enum Judged {
    Same,
    /// The reference fails or is wrong in a known way and strata's answer
    /// is the right one; the reason is counted.
    Known(&'static str),
    Differs(String),
}

pub const RETARGET: &str = "symlink retargeted with the same size and time";
pub const EMPTY_XATTR: &str = "reference drops xattrs with empty values when it applies a tar";
pub const ROOT_MODE: &str =
    "overlay: reference drops a child root's special mode bits and applies its umask";
pub const SETGID: &str =
    "overlay: reference makes entries in a child root that lost its set-group-ID bit with the maker's group";
pub const NOTDIR: &str =
    "overlay: reference fails with ENOTDIR below a non-directory of a lower layer";
pub const FOLLOW: &str = "overlay: reference follows symlinks of lower layers";
pub const OPAQUE: &str = "overlay: reference looks past opaque directories of lower layers";
pub const MIXED: &str = "overlay: reference lookup, several faults at once";
pub const LOOP: &str =
    "overlay: reference drops entries whose lower path is a symlink loop (stat: ELOOP)";

/// Lookups with one of the reference's faults each, to name a difference.
const FOLLOW_ONLY: Lookup = Lookup {
    follow: true,
    opaque_blind: false,
    notdir_error: true,
};
const OPAQUE_ONLY: Lookup = Lookup {
    follow: false,
    opaque_blind: true,
    notdir_error: false,
};

/// What the known faults depend on, from the trees of a layer and its
/// parent.
pub struct Facts {
    /// Symlinks (`/path`) whose target changed but not their size or time,
    /// on a driver whose diff compares full trees.
    pub retargets: BTreeSet<String>,
    /// Overlay: each tool's upper directory of the layer and its lowers
    /// (nearest first), strata's first.
    pub overlay: Option<[(PathBuf, Vec<PathBuf>); 2]>,
    /// The layer's set-group-ID shadow ([`setgid_shadow`]).
    pub shadow: BTreeSet<String>,
}

impl Facts {
    /// Whether `/path` is a retargeted symlink or a directory above one
    /// (listed as modified because of it).
    fn retarget_or_above(&self, path: &str) -> bool {
        self.retargets
            .iter()
            .any(|r| r == path || r.starts_with(&format!("{path}/")))
    }

    /// The overlay model's `changes` on `tool`'s layers.
    fn model_changes(&self, tool: usize, how: Lookup) -> Result<Vec<String>, String> {
        let (upper, lowers) = &self.overlay.as_ref().expect("overlay")[tool];
        overlay_model::changes(upper, lowers, how)
    }

    /// Overlay: the reference's entries whose lower path loops (see
    /// [`overlay_model::lower_loops`]); empty elsewhere.
    fn reference_loops(&self) -> BTreeSet<String> {
        match &self.overlay {
            Some([_, (upper, lowers)]) => overlay_model::lower_loops(upper, lowers),
            None => BTreeSet::new(),
        }
    }

    fn model_markers(&self, tool: usize, how: Lookup) -> BTreeSet<String> {
        let (upper, lowers) = &self.overlay.as_ref().expect("overlay")[tool];
        overlay_model::opaque_markers(upper, lowers, how)
    }
}

/// Times equal as the reference compares them: a missing sub-second part
/// matches any.
fn same_time(a: Time, b: Time) -> bool {
    match (a, b) {
        (Time::At(s1, n1), Time::At(s2, n2)) => s1 == s2 && (n1 == n2 || n1 == 0 || n2 == 0),
        (a, b) => a == b,
    }
}

pub fn facts(pair: &Pair, layers: &[Layer], i: usize) -> Facts {
    let overlay = pair.variant.native_overlay().then(|| {
        std::array::from_fn(|t| {
            let diff = |l: &Layer| {
                pair.stores[t]
                    .graph
                    .join("overlay")
                    .join(&l.ids[t])
                    .join("diff")
            };
            (
                diff(&layers[i]),
                layers[..i].iter().rev().map(diff).collect(),
            )
        })
    });
    let mut retargets = BTreeSet::new();
    let full_tree = !pair.variant.native_overlay();
    if let (true, Some(parent)) = (full_tree, i.checked_sub(1).map(|p| &layers[p].tree)) {
        let layer: &Tree = &layers[i].tree;
        for (p, e) in &layer.entries {
            let Some(old) = parent.entries.get(p) else {
                continue;
            };
            // The reference's full-tree comparison looks at mode, owner,
            // size, time and capabilities, not at a link's target.
            if e.kind == "symlink"
                && old.kind == "symlink"
                && e.size == old.size
                && same_time(e.mtime, old.mtime)
                && (e.mode, e.uid, e.gid) == (old.mode, old.uid, old.gid)
                && e.xattrs == old.xattrs
                && e.content != old.content
            {
                retargets.insert(format!("/{p}"));
            }
        }
    }
    Facts {
        retargets,
        overlay,
        shadow: layers[i].shadow.clone(),
    }
}

/// The paths (tree keys) of a layer whose entries differ between strata's
/// tree and the reference's only in group and, where strata's has it, the
/// set-group-ID bit, each directly in the root, in a directory with the
/// bit in strata's tree only, or in such a path: what [`SETGID`] explains.
/// Empty unless the layer is an overlay layer with a layer below it whose
/// root has the bit in strata's tree: the reference's child of that layer
/// started without it ([`ROOT_MODE`]), whatever the edits did to the root
/// afterwards.
pub fn setgid_shadow(
    v: &Variant,
    below: &[Layer],
    strata: &Tree,
    reference: &Tree,
) -> BTreeSet<String> {
    let mut shadow = BTreeSet::new();
    let bit = |e: &Entry| e.mode & 0o2000 != 0;
    let fault = v.native_overlay()
        && below
            .iter()
            .any(|l| l.strata_tree.entries.get("").is_some_and(bit));
    if !fault {
        return shadow;
    }
    // Keys are sorted, so a directory comes before what is in it.
    for (p, s) in strata.entries.iter().filter(|(p, _)| !p.is_empty()) {
        let Some(r) = reference.entries.get(p) else {
            continue;
        };
        let group_only = s != r
            && (Entry {
                gid: r.gid,
                mode: r.mode,
                ..s.clone()
            }) == *r
            && (s.mode ^ r.mode) & !0o2000 == 0
            && (s.mode == r.mode || bit(s));
        let parent = p.rfind('/').map_or("", |i| &p[..i]);
        let inside = parent.is_empty()
            || shadow.contains(parent)
            || matches!(
                (strata.entries.get(parent), reference.entries.get(parent)),
                (Some(a), Some(b)) if bit(a) && !bit(b)
            );
        if group_only && inside {
            shadow.insert(p.clone());
        }
    }
    shadow
}

/// `tree` with the group and set-group-ID bit of the `shadow`'s paths
/// cleared.
pub fn without_shadow(tree: &Tree, shadow: &BTreeSet<String>) -> Tree {
    let mut t = tree.clone();
    for p in shadow {
        if let Some(e) = t.entries.get_mut(p) {
            e.gid = 0;
            e.mode &= !0o2000;
        }
    }
    t
}

/// `members` with the group and set-group-ID bit of the `shadow`'s paths
/// (and of their opaque markers) cleared.
fn members_without_shadow(members: &[Member], shadow: &BTreeSet<String>) -> Vec<Member> {
    let mut v = members.to_vec();
    for m in &mut v {
        if shadow.contains(m.name.trim_end_matches("/.wh..wh..opq")) {
            m.gid = 0;
            m.gname.clear();
            m.mode &= !0o2000;
        }
    }
    v
}

fn lines(out: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = String::from_utf8_lossy(out)
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

fn only(a: &[String], b: &[String]) -> Vec<String> {
    a.iter().filter(|x| !b.contains(x)).cloned().collect()
}

/// `changes`, compared as sets of lines (the reference's order is its
/// directory order).
pub fn judge_changes(f: &Facts, s: &CmdResult, r: &CmdResult) -> Judged {
    match (s, r) {
        (Ok(s), Ok(r)) => {
            let (s, r) = (lines(s), lines(r));
            if s == r {
                return Judged::Same;
            }
            let (only_s, only_r) = (only(&s, &r), only(&r, &s));
            let retarget = |l: &String| {
                let above = ancestors(&f.retargets);
                f.retargets
                    .iter()
                    .chain(&above)
                    .any(|p| *l == format!("Modify {}", quote(p)))
            };
            if only_r.is_empty() && only_s.iter().all(retarget) {
                return Judged::Known(RETARGET);
            }
            if let Some(k) = overlay_known(f, &Ok(s.clone()), &Ok(r.clone())) {
                return k;
            }
            Judged::Differs(format!(
                "only strata: {only_s:?}; only reference: {only_r:?}{}",
                overlay_models(f)
            ))
        }
        (s, r) => {
            let lines = |o: &CmdResult| o.as_ref().map(|b| lines(b)).map_err(Clone::clone);
            if let Some(k) = overlay_known(f, &lines(s), &lines(r)) {
                return k;
            }
            Judged::Differs(format!(
                "strata: {}; reference: {}{}",
                show(s),
                show(r),
                overlay_models(f)
            ))
        }
    }
}

/// On overlay: `Known` when strata's `changes` are the merged tree's and
/// the reference's are its own lookup's (both failing counts as the same).
fn overlay_known(
    f: &Facts,
    s: &Result<Vec<String>, String>,
    r: &Result<Vec<String>, String>,
) -> Option<Judged> {
    f.overlay.as_ref()?;
    let merged = f.model_changes(0, Lookup::MERGED);
    if s.is_err() || *s != merged {
        return None;
    }
    let same = |a: &Result<Vec<String>, String>, b: &Result<Vec<String>, String>| match (a, b) {
        (Ok(a), Ok(b)) => a == b,
        (Err(_), Err(_)) => true,
        _ => false,
    };
    if !same(r, &f.model_changes(1, Lookup::REFERENCE)) {
        return None;
    }
    Some(Judged::Known(
        if r.is_err() && !f.reference_loops().is_empty() {
            LOOP
        } else if r.is_err() {
            NOTDIR
        } else if same(r, &f.model_changes(1, FOLLOW_ONLY)) {
            FOLLOW
        } else if same(r, &f.model_changes(1, OPAQUE_ONLY)) {
            OPAQUE
        } else {
            MIXED
        },
    ))
}

/// The overlay models' answers, for a failure report.
fn overlay_models(f: &Facts) -> String {
    if f.overlay.is_none() {
        return String::new();
    }
    format!(
        "\n    merged-tree model (strata's layers): {:?}\n    reference model (its layers): {:?}",
        f.model_changes(0, Lookup::MERGED),
        f.model_changes(1, Lookup::REFERENCE)
    )
}

/// A command's output as text, or its failure.
pub fn show(o: &CmdResult) -> String {
    match o {
        Ok(b) => format!("{:?}", String::from_utf8_lossy(b)),
        Err(e) => format!("failed: {e}"),
    }
}

/// The directories above `paths` (`/a/b/c` → `/a`, `/a/b`).
fn ancestors(paths: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for p in paths {
        let mut a = p.as_str();
        while let Some(i) = a.rfind('/').filter(|&i| i > 0) {
            a = &a[..i];
            out.insert(a.to_string());
        }
    }
    out
}

/// A path as `changes` prints it (Go's %q for the names the test makes).
fn quote(p: &str) -> String {
    format!("{p:?}")
}

fn number(o: &CmdResult) -> Result<u64, String> {
    let o = o.as_ref().map_err(Clone::clone)?;
    let t = String::from_utf8_lossy(o);
    t.trim().parse().map_err(|_| format!("not a number: {t:?}"))
}

pub fn judge_diffsize(f: &Facts, layer: &Tree, s: &CmdResult, r: &CmdResult) -> Judged {
    match (number(s), number(r)) {
        (Ok(a), Ok(b)) if a == b => Judged::Same,
        (Ok(a), Ok(b)) => {
            let missed: u64 = f
                .retargets
                .iter()
                .filter_map(|p| layer.entries.get(&p[1..]))
                .map(|e| e.size)
                .sum();
            if !f.retargets.is_empty() && a == b + missed {
                Judged::Known(RETARGET)
            } else {
                Judged::Differs(format!("strata: {a}; reference: {b}"))
            }
        }
        (a, b) => Judged::Differs(format!("strata: {a:?}; reference: {b:?}")),
    }
}

/// Parsed `diff` outputs of both tools.
pub type Tars = [Result<(Vec<u8>, Vec<Member>), String>; 2];

pub fn judge_diff(f: &Facts, tars: &Tars) -> Judged {
    match tars {
        [Ok((_, s)), Ok((_, r))] => {
            let d = tarfacts::compare(s, r, ("strata", "reference"));
            if d.is_empty() {
                return Judged::Same;
            }
            let (s, r) = (
                &members_without_shadow(s, &f.shadow)[..],
                &members_without_shadow(r, &f.shadow)[..],
            );
            if tarfacts::compare(s, r, ("strata", "reference")).is_empty() {
                return Judged::Known(SETGID);
            }
            if let Some(k) = overlay_markers_known(f, s, r) {
                return k;
            }
            // Entries the reference could not stat in its lowers (and
            // their opaque markers) are in strata's diff only.
            let loops = f.reference_loops();
            if !loops.is_empty() {
                let dropped = |m: &Member| {
                    let n = m.name.trim_end_matches('/');
                    loops.contains(n.trim_end_matches("/.wh..wh..opq"))
                };
                let kept: Vec<Member> = s.iter().filter(|m| !dropped(m)).cloned().collect();
                if tarfacts::compare(&kept, r, ("strata", "reference")).is_empty() {
                    return Judged::Known(LOOP);
                }
            }
            // The retargeted links (and the directories above them that
            // nothing else changed) are in strata's diff only.
            let in_r = |m: &Member| r.iter().any(|x| x.name == m.name);
            let (extra, s_rest): (Vec<Member>, Vec<Member>) =
                s.iter().cloned().partition(|m| !in_r(m));
            let retarget_in_r = r
                .iter()
                .any(|m| f.retargets.contains(&format!("/{}", m.name)));
            if !retarget_in_r
                && !extra.is_empty()
                && extra
                    .iter()
                    .all(|m| f.retarget_or_above(&format!("/{}", m.name)))
                && tarfacts::compare(&s_rest, r, ("strata", "reference")).is_empty()
            {
                return Judged::Known(RETARGET);
            }
            Judged::Differs(d.join("\n    "))
        }
        [s, r] => Judged::Differs(format!(
            "strata: {:?}; reference: {:?}",
            s.as_ref().err(),
            r.as_ref().err()
        )),
    }
}

/// On overlay: `Known` when the diffs differ only in opaque markers and
/// each tool marks what its lookup finds below (strata the merged tree's).
fn overlay_markers_known(f: &Facts, s: &[Member], r: &[Member]) -> Option<Judged> {
    f.overlay.as_ref()?;
    let markers = |l: &[Member]| -> BTreeSet<String> {
        l.iter()
            .filter(|m| m.kind == "opaque")
            .map(|m| m.name.trim_end_matches("/.wh..wh..opq").to_string())
            .collect()
    };
    let (ms, mr) = (markers(s), markers(r));
    if ms != f.model_markers(0, Lookup::MERGED) || mr != f.model_markers(1, Lookup::REFERENCE) {
        return None;
    }
    let odd: BTreeSet<&String> = ms.symmetric_difference(&mr).collect();
    let keep = |l: &[Member]| -> Vec<Member> {
        l.iter()
            .filter(|m| {
                m.kind != "opaque"
                    || !odd.contains(&m.name.trim_end_matches("/.wh..wh..opq").to_string())
            })
            .cloned()
            .collect()
    };
    if !tarfacts::compare(&keep(s), &keep(r), ("strata", "reference")).is_empty() {
        return None;
    }
    Some(Judged::Known(if mr == f.model_markers(1, FOLLOW_ONLY) {
        FOLLOW
    } else if mr == f.model_markers(1, OPAQUE_ONLY) {
        OPAQUE
    } else {
        MIXED
    }))
}

/// A diff applied by the other tool against the layer: `differences` are
/// the lines of the full comparison, `outside_known` those of a comparison
/// that leaves out the paths of known faults of the diff's maker.
pub fn judge_applied(
    f: &Facts,
    diff_by_reference: bool,
    differences: Vec<String>,
    outside_known: impl Fn(&dyn Fn(&str) -> bool) -> Vec<String>,
    without_empty_xattrs: impl FnOnce() -> Vec<String>,
    without_shadow: impl FnOnce() -> Vec<String>,
) -> Judged {
    if differences.is_empty() {
        return Judged::Same;
    }
    if !f.shadow.is_empty() && without_shadow().is_empty() {
        return Judged::Known(SETGID);
    }
    if !diff_by_reference && without_empty_xattrs().is_empty() {
        return Judged::Known(EMPTY_XATTR);
    }
    if diff_by_reference {
        // What the reference's diff left out comes back with default
        // metadata when applied.
        let loops = f.reference_loops();
        if !loops.is_empty() && outside_known(&|p: &str| loops.contains(p)).is_empty() {
            return Judged::Known(LOOP);
        }
    }
    if diff_by_reference && !f.retargets.is_empty() {
        let known = |p: &str| f.retargets.contains(&format!("/{p}"));
        if outside_known(&known).is_empty() {
            return Judged::Known(RETARGET);
        }
    }
    Judged::Differs(differences.join("\n    "))
}

/// The process umask (read, not set: other threads create files).
fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        .unwrap_or(0o022)
}

/// The mounted trees of a layer, strata's first; `parent` is strata's
/// tree of the layer below, `shadow` the layer's set-group-ID shadow.
pub fn judge_trees(
    v: &Variant,
    trees: &[Tree; 2],
    parent: Option<&Tree>,
    shadow: &BTreeSet<String>,
) -> Judged {
    let d = snapshot::compare(&trees[0], &trees[1], ("strata", "reference"), &|_| false);
    if d.is_empty() {
        return Judged::Same;
    }
    let root = |t: &Tree| t.entries.get("").cloned();
    let (Some(s), Some(r)) = (root(&trees[0]), root(&trees[1])) else {
        return Judged::Differs(d.join("\n    "));
    };
    let below_root = |a: &Tree, b: &Tree| {
        snapshot::compare(a, b, ("strata", "reference"), &|p| p.is_empty()).is_empty()
    };
    let rest_same = below_root(&trees[0], &trees[1]);
    let rest_known = rest_same
        || below_root(
            &without_shadow(&trees[0], shadow),
            &without_shadow(&trees[1], shadow),
        );
    let inherited = parent
        .and_then(|p| p.entries.get(""))
        .is_some_and(|p| p.mode == s.mode);
    let root_known = s == r
        || (v.native_overlay()
            && inherited
            && r.mode == s.mode & 0o777 & !umask()
            && (snapshot::Entry { mode: r.mode, ..s }) == r);
    match (root_known, rest_same, rest_known) {
        (true, true, _) => Judged::Known(ROOT_MODE),
        (true, false, true) => Judged::Known(SETGID),
        _ => Judged::Differs(d.join("\n    ")),
    }
}
