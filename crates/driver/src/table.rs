//! The driver table (the seed's `Register`, `InitFunc`, `New` and its
//! priority list).
//!
//! A [`Drivers`] value maps names to [`InitFn`]s. [`Drivers::builtin`] has
//! overlay, btrfs and vfs, plus zfs and aufs as names that refuse with
//! `NotSupported` (no zfs or aufs support here). More drivers can be added
//! with [`Drivers::register`].
//!
//! Homes: a driver named `N` gets `home = <graph root>/N` and
//! `run_root = <run root>/N` — the layout containers/storage uses
//! (`/var/lib/containers/storage/overlay`, `…/vfs`), so a store written by
//! either tool is found by the other.
//!
//! [`Drivers::new_driver`] picks:
//! 1. the driver named by the caller, if any;
//! 2. else the driver the store already uses: the first name in priority
//!    order whose home directory exists (two such homes is an error, since
//!    guessing would hide one store's layers);
//! 3. else the first driver in priority order (overlay, btrfs, zfs, vfs)
//!    that initialises here. Failures meaning "not here" (`NotSupported`,
//!    `Prerequisites`, `IncompatibleFs`) move on to the next; other errors
//!    stop the search.

use std::path::PathBuf;

use strata_idmap::IdMappings;

use crate::{Driver, Error, ErrorKind, InitFn, InitOptions, Result};

/// The built-in drivers: the one list of driver names that the table, the
/// option prefixes ([`crate::options`]) and the store's configuration use.
const BUILTIN: &[(&str, InitFn)] = &[
    ("overlay", crate::overlay::init),
    ("btrfs", crate::btrfs::init),
    ("zfs", zfs_init),
    ("vfs", crate::vfs::init),
    ("aufs", aufs_init),
];

/// Other names of built-in drivers (the reference takes `overlay2.`
/// options for overlay).
const ALIASES: &[(&str, &str)] = &[("overlay2", "overlay")];

/// Names tried, in order, when no driver is named (`aufs` never is).
pub const PRIORITY: &[&str] = &["overlay", "btrfs", "zfs", "vfs"];

/// The built-in drivers' names, in registration order.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTIN.iter().map(|(n, _)| *n)
}

/// The built-in driver `name` stands for, by its own name (`overlay` for
/// `overlay2`); `None` when it names none.
pub fn builtin_name(name: &str) -> Option<&'static str> {
    let name = ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, n)| n);
    builtin_names().find(|n| *n == name)
}

/// Where a store lives and how its driver is configured.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// The store's graph root (`--graph`); homes are `<graph_root>/<name>`.
    pub graph_root: PathBuf,
    /// The store's run root (`--run`); run dirs are `<run_root>/<name>`.
    pub run_root: PathBuf,
    /// `key=value` driver options, as given.
    pub driver_options: Vec<String>,
    /// ID maps of the store.
    pub id_mappings: IdMappings,
    /// Enable experimental features.
    pub experimental: bool,
}

impl StoreOptions {
    /// The [`InitOptions`] for driver `name`.
    pub fn init_options(&self, name: &str) -> InitOptions {
        InitOptions {
            home: self.graph_root.join(name),
            run_root: self.run_root.join(name),
            driver_options: self.driver_options.clone(),
            id_mappings: self.id_mappings.clone(),
            experimental: self.experimental,
        }
    }
}

/// A table of drivers by name.
#[derive(Clone)]
pub struct Drivers {
    entries: Vec<(String, InitFn)>,
}

impl Default for Drivers {
    fn default() -> Self {
        Self::builtin()
    }
}

fn zfs_init(_: &InitOptions) -> Result<Box<dyn Driver>> {
    Err(Error::NotSupported(
        "zfs: this build has no zfs driver (no zfs module or zfs tools here)".into(),
    ))
}

fn aufs_init(_: &InitOptions) -> Result<Box<dyn Driver>> {
    Err(Error::NotSupported(
        "aufs: this build has no aufs driver (aufs is not in this kernel)".into(),
    ))
}

impl Drivers {
    /// A table with no drivers.
    pub fn empty() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// The built-in drivers: overlay, btrfs, vfs; zfs and aufs refuse.
    pub fn builtin() -> Self {
        Self {
            entries: BUILTIN.iter().map(|(n, f)| (n.to_string(), *f)).collect(),
        }
    }

    /// Adds a driver (the seed's `Register`). A taken name is an error.
    pub fn register(&mut self, name: &str, init: InitFn) -> Result<()> {
        if self.get(name).is_some() {
            return Err(Error::InvalidOption {
                key: name.to_string(),
                reason: "a driver with this name is already registered".into(),
            });
        }
        self.entries.push((name.to_string(), init));
        Ok(())
    }

    /// Registered names, in registration order.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn get(&self, name: &str) -> Option<InitFn> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, f)| *f)
    }

    /// Initialises the driver `name`; an unknown name is `NotSupported`.
    pub fn init(&self, name: &str, opts: &StoreOptions) -> Result<Box<dyn Driver>> {
        let init = self
            .get(name)
            .ok_or_else(|| Error::NotSupported(format!("{name}: no such driver")))?;
        init(&opts.init_options(name))
    }

    /// Order of the search: the priority list, then other registered names.
    fn search_order(&self) -> Vec<&str> {
        let mut order: Vec<&str> = PRIORITY
            .iter()
            .copied()
            .filter(|n| self.get(n).is_some())
            .collect();
        for n in self.names() {
            if !order.contains(&n) && n != "aufs" {
                order.push(n);
            }
        }
        order
    }

    /// Names whose home exists under the graph root (drivers a store used).
    pub fn prior_drivers(&self, opts: &StoreOptions) -> Vec<&str> {
        self.search_order()
            .into_iter()
            .filter(|n| opts.graph_root.join(n).is_dir())
            .collect()
    }

    /// Picks and initialises a driver (the seed's `New`); see the module docs.
    pub fn new_driver(&self, name: Option<&str>, opts: &StoreOptions) -> Result<Box<dyn Driver>> {
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            return self.init(name, opts);
        }
        let prior = self.prior_drivers(opts);
        match prior.as_slice() {
            [] => {}
            [one] => return self.init(one, opts),
            many => {
                return Err(Error::InvalidOption {
                    key: "driver".into(),
                    reason: format!(
                        "{} holds layers of several drivers ({}); name one explicitly",
                        opts.graph_root.display(),
                        many.join(", ")
                    ),
                })
            }
        }
        let mut why = Vec::new();
        for n in self.search_order() {
            match self.init(n, opts) {
                Ok(d) => return Ok(d),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::Unsupported
                            | ErrorKind::Prerequisites
                            | ErrorKind::IncompatibleFs
                    ) =>
                {
                    why.push(format!("{n}: {e}"));
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::NotSupported(format!(
            "no driver initialises here ({})",
            why.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refuse(_: &InitOptions) -> Result<Box<dyn Driver>> {
        Err(Error::Prerequisites("test driver refuses".into()))
    }

    fn opts(dir: &std::path::Path) -> StoreOptions {
        StoreOptions {
            graph_root: dir.join("graph"),
            run_root: dir.join("run"),
            ..Default::default()
        }
    }

    #[test]
    fn unknown_and_stub_names() {
        let t = Drivers::builtin();
        let dir = tempfile::tempdir().unwrap();
        for name in ["nosuch", "zfs", "aufs"] {
            let e = t.new_driver(Some(name), &opts(dir.path())).err().unwrap();
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{name}");
            assert!(e.to_string().contains(name), "{e}");
        }
    }

    #[test]
    fn register_rejects_duplicates() {
        let mut t = Drivers::builtin();
        assert!(t.register("vfs", refuse).is_err());
        t.register("mine", refuse).unwrap();
        assert!(t.names().contains(&"mine"));
        let dir = tempfile::tempdir().unwrap();
        let e = t.new_driver(Some("mine"), &opts(dir.path())).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::Prerequisites);
    }

    #[test]
    fn homes_are_graph_root_plus_name() {
        let o = StoreOptions {
            graph_root: "/g".into(),
            run_root: "/r".into(),
            ..Default::default()
        };
        let i = o.init_options("vfs");
        assert_eq!(i.home, PathBuf::from("/g/vfs"));
        assert_eq!(i.run_root, PathBuf::from("/r/vfs"));
    }

    #[test]
    fn prior_driver_detection() {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(dir.path());
        let t = Drivers::builtin();
        assert!(t.prior_drivers(&o).is_empty());
        std::fs::create_dir_all(o.graph_root.join("vfs")).unwrap();
        assert_eq!(t.prior_drivers(&o), vec!["vfs"]);
        std::fs::create_dir_all(o.graph_root.join("btrfs")).unwrap();
        let e = t.new_driver(None, &o).err().unwrap();
        assert!(e.to_string().contains("btrfs, vfs"), "{e}");
    }
}
