//! What is current, what is durable, and what a sync moves from one to the
//! other; where the power is cut.

use std::collections::BTreeSet;

use crate::tree::{Node, NsOp, Tree};

/// Which guarantees the filesystem gives; both lose all file data that was
/// not synced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Model {
    /// ext4 (`data=ordered`) and XFS: name changes go into one journal in
    /// the order they were made, and any `fsync`/`fdatasync` (of a file or a
    /// directory) or `syncfs` commits the journal: every earlier name change
    /// becomes durable, atomically and in order. File data and attributes
    /// become durable only by an `fsync`/`fdatasync` of that file (or
    /// `syncfs`).
    #[default]
    Journal,
    /// POSIX at its weakest: a name change becomes durable only when its
    /// directory is synced (`fsync` of the directory, or `syncfs`), together
    /// with what it depends on (earlier changes of the same names, the
    /// creation of the directories and inodes it uses). A rename is atomic
    /// (both names move together) and durable when either directory is
    /// synced. `fsync` of a file makes its data durable but not its name.
    Directory,
}

/// Where to cut the power.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Cut {
    /// Never (counting only).
    #[default]
    Never,
    /// Just before the n-th sync point (1-based) takes effect.
    BeforeSync(u64),
    /// Just before the n-th change (1-based) takes effect.
    BeforeOp(u64),
}

/// What happened since the filesystem was mounted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Changes made (writes, attribute and name changes).
    pub ops: u64,
    /// Sync points (`fsync`, `fdatasync`, `fsync` of a directory, `syncfs`).
    pub syncs: u64,
    /// The value of `ops` at each sync point.
    pub ops_at_sync: Vec<u64>,
    /// Whether the power was cut.
    pub cut: bool,
}

/// Whether a request may go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Yes.
    Go,
    /// No: the power is off (now, or since an earlier cut).
    Dead,
}

/// The two trees and what lies between them.
#[derive(Debug, Default)]
pub struct Machine {
    /// What programs see.
    pub current: Tree,
    /// What survives a power cut.
    pub durable: Tree,
    pending: Vec<NsOp>,
    dirty: BTreeSet<u64>,
    /// Inodes with open handles (kept while unnamed).
    pub open: BTreeSet<u64>,
    model: Model,
    cut: Cut,
    counts: Counts,
    next_ino: u64,
}

impl Machine {
    /// A filesystem whose current and durable state are `tree`.
    pub fn new(tree: Tree, model: Model) -> Self {
        let next_ino = tree.max_ino() + 1;
        Machine {
            current: tree.clone(),
            durable: tree,
            model,
            next_ino,
            ..Default::default()
        }
    }

    /// Sets where to cut the power.
    pub fn set_cut(&mut self, cut: Cut) {
        self.cut = cut;
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        self.counts.clone()
    }

    /// Whether the power is off.
    pub fn is_dead(&self) -> bool {
        self.counts.cut
    }

    /// A fresh inode number.
    pub fn alloc_ino(&mut self) -> u64 {
        let i = self.next_ino;
        self.next_ino += 1;
        i
    }

    /// Called before a change: counts it, and cuts the power when it is
    /// the chosen one.
    pub fn before_op(&mut self) -> Gate {
        if self.counts.cut {
            return Gate::Dead;
        }
        self.counts.ops += 1;
        if self.cut == Cut::BeforeOp(self.counts.ops) {
            self.power_cut();
            return Gate::Dead;
        }
        Gate::Go
    }

    fn before_sync(&mut self) -> Gate {
        if self.counts.cut {
            return Gate::Dead;
        }
        self.counts.syncs += 1;
        self.counts.ops_at_sync.push(self.counts.ops);
        if self.cut == Cut::BeforeSync(self.counts.syncs) {
            self.power_cut();
            return Gate::Dead;
        }
        Gate::Go
    }

    /// Drops everything not durable; from now on every request fails.
    pub fn power_cut(&mut self) {
        self.counts.cut = true;
        self.current = self.durable.clone();
        self.pending.clear();
        self.dirty.clear();
    }

    /// Records a name change made to the current tree.
    pub fn log(&mut self, op: NsOp) {
        self.pending.push(op);
    }

    /// Records that an inode's data or attributes changed.
    pub fn touch(&mut self, ino: u64) {
        self.dirty.insert(ino);
    }

    /// `fsync`/`fdatasync` of an inode (a file or a directory).
    pub fn fsync(&mut self, ino: u64) -> Gate {
        if self.before_sync() == Gate::Dead {
            return Gate::Dead;
        }
        let is_dir = self.current.nodes.get(&ino).is_some_and(Node::is_dir);
        match (self.model, is_dir) {
            (Model::Journal, _) => self.commit_names(|_| true),
            (Model::Directory, true) => self.commit_names(|op| op.dirs().contains(&ino)),
            (Model::Directory, false) => {}
        }
        self.commit_data(ino);
        Gate::Go
    }

    /// `syncfs` (or `sync`): everything becomes durable.
    pub fn syncfs(&mut self) -> Gate {
        if self.before_sync() == Gate::Dead {
            return Gate::Dead;
        }
        self.commit_names(|_| true);
        for ino in std::mem::take(&mut self.dirty) {
            self.copy_data(ino);
        }
        self.durable.collect_garbage();
        Gate::Go
    }

    fn commit_data(&mut self, ino: u64) {
        if self.dirty.remove(&ino) {
            self.copy_data(ino);
        }
    }

    fn copy_data(&mut self, ino: u64) {
        if let Some(n) = self.current.nodes.get(&ino) {
            self.durable.take_data(ino, n);
        }
    }

    /// Applies to the durable tree the pending changes `pick` selects, with
    /// every earlier pending change they depend on, in their order.
    fn commit_names(&mut self, pick: impl Fn(&NsOp) -> bool) {
        let mut chosen: BTreeSet<usize> = (0..self.pending.len())
            .filter(|i| pick(&self.pending[*i]))
            .collect();
        loop {
            let mut more = BTreeSet::new();
            for &i in &chosen {
                let op = &self.pending[i];
                let names = op.names();
                let needs = op.needs();
                for (j, earlier) in self.pending[..i].iter().enumerate() {
                    if chosen.contains(&j) {
                        continue;
                    }
                    let same_name = earlier.names().iter().any(|n| names.contains(n));
                    let makes_needed = earlier.creates().is_some_and(|c| needs.contains(&c));
                    // A rename moves an inode whose own creation may still
                    // be pending in another directory.
                    let moves_made = matches!(op, NsOp::Rename { .. })
                        && earlier.creates().is_some_and(|c| {
                            names
                                .first()
                                .is_some_and(|(d, n)| self.current.child(*d, n) == Some(c))
                        });
                    if same_name || makes_needed || moves_made {
                        more.insert(j);
                    }
                }
            }
            if more.is_empty() {
                break;
            }
            chosen.extend(more);
        }
        let open = self.open.clone();
        let mut keep = Vec::with_capacity(self.pending.len());
        for (i, op) in std::mem::take(&mut self.pending).into_iter().enumerate() {
            if chosen.contains(&i) {
                if !self.durable.apply(&op, &open) {
                    tracing::debug!("crashfs: change does not fit the durable tree: {op:?}");
                }
            } else {
                keep.push(op);
            }
        }
        self.pending = keep;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{Content, ROOT};
    use std::ffi::OsStr;

    fn create(m: &mut Machine, parent: u64, name: &str, dir: bool) -> u64 {
        let ino = m.alloc_ino();
        let content = if dir {
            Content::Dir(Default::default())
        } else {
            Content::File(Vec::new())
        };
        let node = Node::new(if dir { 0o040755 } else { 0o100644 }, 0, 0, content);
        let op = NsOp::Link {
            parent,
            name: name.into(),
            ino,
            fresh: Some(node),
        };
        assert!(m.current.apply(&op, &BTreeSet::new()));
        m.log(op);
        ino
    }

    fn write(m: &mut Machine, ino: u64, data: &[u8]) {
        m.current.nodes.get_mut(&ino).unwrap().content = Content::File(data.to_vec());
        m.touch(ino);
    }

    fn content(t: &Tree, path: &str) -> Option<Vec<u8>> {
        match &t.nodes.get(&t.resolve(path.as_ref())?)?.content {
            Content::File(d) => Some(d.clone()),
            _ => None,
        }
    }

    #[test]
    fn journal_fsync_of_a_file_commits_every_name_but_only_its_data() {
        let mut m = Machine::new(Tree::default(), Model::Journal);
        let d = create(&mut m, ROOT, "d", true);
        let a = create(&mut m, d, "a", false);
        let b = create(&mut m, d, "b", false);
        write(&mut m, a, b"aaa");
        write(&mut m, b, b"bbb");
        m.fsync(a);
        m.power_cut();
        assert_eq!(content(&m.durable, "d/a").as_deref(), Some(&b"aaa"[..]));
        assert_eq!(content(&m.durable, "d/b").as_deref(), Some(&b""[..]));
        assert_eq!(m.current, m.durable);
    }

    #[test]
    fn directory_model_needs_the_directory_synced() {
        let mut m = Machine::new(Tree::default(), Model::Directory);
        let d = create(&mut m, ROOT, "d", true);
        let a = create(&mut m, d, "a", false);
        write(&mut m, a, b"aaa");
        m.fsync(a);
        let mut lost = m.durable.clone();
        lost.collect_garbage();
        assert_eq!(content(&lost, "d/a"), None, "name not durable yet");
        // Syncing d brings its entry and, as a dependency, d's own creation.
        m.fsync(d);
        assert_eq!(content(&m.durable, "d/a").as_deref(), Some(&b"aaa"[..]));
    }

    #[test]
    fn rename_over_is_atomic_and_waits_for_a_sync() {
        let mut m = Machine::new(Tree::default(), Model::Directory);
        let f = create(&mut m, ROOT, "f", false);
        write(&mut m, f, b"old");
        m.syncfs();
        let t = create(&mut m, ROOT, "t", false);
        write(&mut m, t, b"new");
        m.fsync(t);
        let op = NsOp::Rename {
            from: (ROOT, "t".into()),
            to: (ROOT, "f".into()),
            exchange: false,
        };
        assert!(m.current.apply(&op, &BTreeSet::new()));
        m.log(op);
        let mut before = m.durable.clone();
        before.collect_garbage();
        assert_eq!(content(&before, "f").as_deref(), Some(&b"old"[..]));
        m.fsync(ROOT);
        assert_eq!(content(&m.durable, "f").as_deref(), Some(&b"new"[..]));
        assert_eq!(m.durable.child(ROOT, OsStr::new("t")), None);
    }

    #[test]
    fn cuts_count_syncs_and_ops() {
        let mut m = Machine::new(Tree::default(), Model::Journal);
        m.set_cut(Cut::BeforeSync(2));
        assert_eq!(m.before_op(), Gate::Go);
        let a = create(&mut m, ROOT, "a", false);
        assert_eq!(m.fsync(a), Gate::Go);
        assert_eq!(m.before_op(), Gate::Go);
        write(&mut m, a, b"x");
        assert_eq!(m.fsync(a), Gate::Dead);
        assert!(m.is_dead());
        assert_eq!(m.before_op(), Gate::Dead);
        assert_eq!(content(&m.current, "a").as_deref(), Some(&b""[..]));
        assert_eq!(m.counts().ops_at_sync, vec![1, 2]);
    }
}
