//! The in-memory filesystem: inodes, directory entries, and the log of
//! namespace changes that are not yet durable.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::time::SystemTime;

/// Inode number of the root directory (FUSE's fixed root).
pub const ROOT: u64 = 1;

/// What an inode holds besides its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A regular file's bytes.
    File(Vec<u8>),
    /// A directory's entries.
    Dir(BTreeMap<OsString, u64>),
    /// A symbolic link's target.
    Symlink(OsString),
    /// A device, fifo or socket (the type is in `mode`).
    Special {
        /// Device number (0 for fifos and sockets).
        rdev: u32,
    },
}

/// One inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Type and permission bits (`st_mode`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Access time.
    pub atime: SystemTime,
    /// Modification time.
    pub mtime: SystemTime,
    /// Status change time.
    pub ctime: SystemTime,
    /// Extended attributes.
    pub xattrs: BTreeMap<OsString, Vec<u8>>,
    /// Names that refer to this inode (directories: 1 for their entry).
    pub links: u32,
    /// Data or entries.
    pub content: Content,
}

impl Node {
    /// A new inode with no names yet.
    pub fn new(mode: u32, uid: u32, gid: u32, content: Content) -> Self {
        let now = SystemTime::now();
        Node {
            mode,
            uid,
            gid,
            atime: now,
            mtime: now,
            ctime: now,
            xattrs: BTreeMap::new(),
            links: 0,
            content,
        }
    }

    /// The directory entries, if this is a directory.
    pub fn entries(&self) -> Option<&BTreeMap<OsString, u64>> {
        match &self.content {
            Content::Dir(e) => Some(e),
            _ => None,
        }
    }

    fn entries_mut(&mut self) -> Option<&mut BTreeMap<OsString, u64>> {
        match &mut self.content {
            Content::Dir(e) => Some(e),
            _ => None,
        }
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        matches!(self.content, Content::Dir(_))
    }

    /// Copies attributes, xattrs and (for non-directories) data from `src`,
    /// keeping this inode's entries and link count.
    fn take_data_of(&mut self, src: &Node) {
        self.mode = src.mode;
        self.uid = src.uid;
        self.gid = src.gid;
        self.atime = src.atime;
        self.mtime = src.mtime;
        self.ctime = src.ctime;
        self.xattrs = src.xattrs.clone();
        if !src.is_dir() {
            self.content = src.content.clone();
        }
    }
}

/// A whole filesystem: inodes by number. The root is [`ROOT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    /// Inodes.
    pub nodes: HashMap<u64, Node>,
}

impl Default for Tree {
    fn default() -> Self {
        let mut root = Node::new(0o040755, 0, 0, Content::Dir(BTreeMap::new()));
        root.links = 1;
        Tree {
            nodes: HashMap::from([(ROOT, root)]),
        }
    }
}

impl Tree {
    /// The inode `ino` refers to under `parent` by `name`.
    pub fn child(&self, parent: u64, name: &OsStr) -> Option<u64> {
        self.nodes.get(&parent)?.entries()?.get(name).copied()
    }

    /// The highest inode number in use.
    pub fn max_ino(&self) -> u64 {
        self.nodes.keys().copied().max().unwrap_or(ROOT)
    }

    /// Resolves a relative path of plain names from the root (no symlinks).
    pub fn resolve(&self, path: &std::path::Path) -> Option<u64> {
        let mut ino = ROOT;
        for c in path.components() {
            match c {
                std::path::Component::Normal(n) => ino = self.child(ino, n)?,
                std::path::Component::RootDir | std::path::Component::CurDir => {}
                _ => return None,
            }
        }
        Some(ino)
    }

    fn drop_link(&mut self, ino: u64, open: &BTreeSet<u64>) {
        let gone = match self.nodes.get_mut(&ino) {
            Some(n) => {
                n.links = n.links.saturating_sub(1);
                n.links == 0
            }
            None => false,
        };
        if gone && !open.contains(&ino) {
            self.remove_tree(ino);
        }
    }

    /// Forgets an inode with no names left (and, for a directory whose
    /// entries were never removed one by one, what it still names).
    pub fn remove_tree(&mut self, ino: u64) {
        if let Some(n) = self.nodes.remove(&ino) {
            if let Content::Dir(e) = n.content {
                for child in e.into_values() {
                    self.drop_link(child, &BTreeSet::new());
                }
            }
        }
    }

    /// Applies a namespace change. `open` lists inodes still open (kept
    /// when their last name goes). Returns false when the change does not
    /// fit this tree (an entry or directory it needs is missing).
    pub fn apply(&mut self, op: &NsOp, open: &BTreeSet<u64>) -> bool {
        match op {
            NsOp::Link {
                parent,
                name,
                ino,
                fresh,
            } => {
                if !self.nodes.get(parent).is_some_and(Node::is_dir) {
                    return false;
                }
                if let Some(f) = fresh {
                    self.nodes.entry(*ino).or_insert_with(|| f.clone());
                }
                if !self.nodes.contains_key(ino) {
                    return false;
                }
                let old = self
                    .nodes
                    .get_mut(parent)
                    .and_then(Node::entries_mut)
                    .and_then(|e| e.insert(name.clone(), *ino));
                if let Some(n) = self.nodes.get_mut(ino) {
                    n.links += 1;
                }
                if let Some(old) = old {
                    self.drop_link(old, open);
                }
                true
            }
            NsOp::Unlink { parent, name } => {
                let old = self
                    .nodes
                    .get_mut(parent)
                    .and_then(Node::entries_mut)
                    .and_then(|e| e.remove(name));
                match old {
                    Some(old) => {
                        self.drop_link(old, open);
                        true
                    }
                    None => false,
                }
            }
            NsOp::Rename { from, to, exchange } => self.rename(from, to, *exchange, open),
        }
    }

    fn rename(
        &mut self,
        from: &(u64, OsString),
        to: &(u64, OsString),
        exchange: bool,
        open: &BTreeSet<u64>,
    ) -> bool {
        let Some(src) = self.child(from.0, &from.1) else {
            return false;
        };
        if !self.nodes.get(&to.0).is_some_and(Node::is_dir) {
            return false;
        }
        let dst = self.child(to.0, &to.1);
        if exchange {
            let Some(dst) = dst else { return false };
            self.set_entry(from.0, &from.1, Some(dst));
            self.set_entry(to.0, &to.1, Some(src));
            return true;
        }
        self.set_entry(from.0, &from.1, None);
        self.set_entry(to.0, &to.1, Some(src));
        if let Some(old) = dst.filter(|d| *d != src) {
            self.drop_link(old, open);
        }
        true
    }

    fn set_entry(&mut self, dir: u64, name: &OsStr, ino: Option<u64>) {
        if let Some(e) = self.nodes.get_mut(&dir).and_then(Node::entries_mut) {
            match ino {
                Some(i) => e.insert(name.to_owned(), i),
                None => e.remove(name),
            };
        }
    }

    /// Makes inode `ino` of this tree hold what `src` has (data and
    /// attributes; a directory keeps its entries). An inode this tree does
    /// not have yet is added with no names: it becomes reachable when the
    /// change that names it is applied.
    pub fn take_data(&mut self, ino: u64, src: &Node) {
        match self.nodes.get_mut(&ino) {
            Some(n) => n.take_data_of(src),
            None => {
                let mut n = src.clone();
                n.links = 0;
                if let Content::Dir(e) = &mut n.content {
                    e.clear();
                }
                self.nodes.insert(ino, n);
            }
        }
    }

    /// Drops inodes that no name reaches (left by data synced for an inode
    /// whose name never became durable).
    pub fn collect_garbage(&mut self) {
        let mut seen = BTreeSet::from([ROOT]);
        let mut todo = vec![ROOT];
        while let Some(i) = todo.pop() {
            if let Some(e) = self.nodes.get(&i).and_then(Node::entries) {
                for c in e.values() {
                    if seen.insert(*c) {
                        todo.push(*c);
                    }
                }
            }
        }
        self.nodes.retain(|i, _| seen.contains(i));
        // Link counts as the names say.
        let mut counts: HashMap<u64, u32> = HashMap::from([(ROOT, 1)]);
        for n in self.nodes.values() {
            for c in n.entries().into_iter().flat_map(|e| e.values()) {
                *counts.entry(*c).or_default() += 1;
            }
        }
        for (i, n) in self.nodes.iter_mut() {
            n.links = counts.get(i).copied().unwrap_or(0);
        }
    }
}

/// A change of names: what is kept in order until a sync makes it durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsOp {
    /// A new name for an inode; `fresh` is the inode as created when this
    /// name made it (create, mkdir, mknod, symlink), `None` for a hard link.
    Link {
        /// Directory.
        parent: u64,
        /// Name.
        name: OsString,
        /// Inode named.
        ino: u64,
        /// The new inode, as created.
        fresh: Option<Node>,
    },
    /// A name removed (unlink, rmdir).
    Unlink {
        /// Directory.
        parent: u64,
        /// Name.
        name: OsString,
    },
    /// A rename (or an exchange of two names).
    Rename {
        /// Old directory and name.
        from: (u64, OsString),
        /// New directory and name.
        to: (u64, OsString),
        /// `RENAME_EXCHANGE`.
        exchange: bool,
    },
}

impl NsOp {
    /// The (directory, name) pairs this change touches.
    pub fn names(&self) -> Vec<(u64, &OsStr)> {
        match self {
            NsOp::Link { parent, name, .. } | NsOp::Unlink { parent, name } => {
                vec![(*parent, name.as_os_str())]
            }
            NsOp::Rename { from, to, .. } => {
                vec![(from.0, from.1.as_os_str()), (to.0, to.1.as_os_str())]
            }
        }
    }

    /// The directories this change modifies.
    pub fn dirs(&self) -> Vec<u64> {
        self.names().into_iter().map(|(d, _)| d).collect()
    }

    /// The inode this change creates, if any.
    pub fn creates(&self) -> Option<u64> {
        match self {
            NsOp::Link {
                ino,
                fresh: Some(_),
                ..
            } => Some(*ino),
            _ => None,
        }
    }

    /// Inodes that must exist for this change to apply (besides the names
    /// it touches): the directories, and a hard link's target.
    pub fn needs(&self) -> Vec<u64> {
        let mut v = self.dirs();
        if let NsOp::Link {
            ino, fresh: None, ..
        } = self
        {
            v.push(*ino);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Node {
        Node::new(0o100644, 0, 0, Content::File(b"x".to_vec()))
    }

    fn link(parent: u64, name: &str, ino: u64, fresh: Option<Node>) -> NsOp {
        NsOp::Link {
            parent,
            name: name.into(),
            ino,
            fresh,
        }
    }

    #[test]
    fn rename_replaces_and_frees_the_old_inode() {
        let mut t = Tree::default();
        let none = BTreeSet::new();
        assert!(t.apply(&link(ROOT, "a", 2, Some(file())), &none));
        assert!(t.apply(&link(ROOT, "b", 3, Some(file())), &none));
        let r = NsOp::Rename {
            from: (ROOT, "a".into()),
            to: (ROOT, "b".into()),
            exchange: false,
        };
        assert!(t.apply(&r, &none));
        assert_eq!(t.child(ROOT, OsStr::new("b")), Some(2));
        assert_eq!(t.child(ROOT, OsStr::new("a")), None);
        assert!(!t.nodes.contains_key(&3));
        // A rename whose source is gone does not fit.
        assert!(!t.apply(&r, &none));
    }

    #[test]
    fn data_of_an_unnamed_inode_waits_for_its_name() {
        let mut t = Tree::default();
        let mut n = file();
        n.content = Content::File(b"synced".to_vec());
        t.take_data(5, &n);
        assert!(t.apply(&link(ROOT, "f", 5, Some(file())), &BTreeSet::new()));
        assert_eq!(t.nodes[&5].content, Content::File(b"synced".to_vec()));
        assert_eq!(t.nodes[&5].links, 1);
        t.take_data(6, &n);
        t.collect_garbage();
        assert!(!t.nodes.contains_key(&6));
    }
}
