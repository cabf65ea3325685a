//! Store configuration: `storage.conf`, environment, defaults.
//!
//! Sources, later ones winning: built-in defaults (as root
//! `/var/lib/containers/storage` and `/run/containers/storage`), the first
//! configuration file found (`$CONTAINERS_STORAGE_CONF`; as non-root
//! `$XDG_CONFIG_HOME/containers/storage.conf`; `/etc/containers/storage.conf`;
//! `/usr/share/containers/storage.conf`), the environment (`STORAGE_DRIVER`,
//! `STORAGE_OPTS`), then whatever the caller sets (command-line flags).
//!
//! Driver options are kept in the reference's string form,
//! `<driver>.<key>=<value>`, and parsed by the driver itself.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use strata_driver::options::DriverOption;
use strata_idmap::IdMap;

use crate::{Error, Result};

/// Default graph root when running as root.
pub const DEFAULT_GRAPH_ROOT: &str = "/var/lib/containers/storage";
/// Default run root when running as root.
pub const DEFAULT_RUN_ROOT: &str = "/run/containers/storage";

/// Everything needed to open a store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// Root of the storage tree (`--graph`).
    pub graph_root: PathBuf,
    /// Root of the runtime state tree (`--run`).
    pub run_root: PathBuf,
    /// Driver name; `None` picks the one the store already uses, else the
    /// first that works in priority order.
    pub driver: Option<String>,
    /// `key=value` driver options.
    pub driver_options: Vec<String>,
    /// UID map of the store (default for new layers).
    pub uid_map: Vec<IdMap>,
    /// GID map of the store.
    pub gid_map: Vec<IdMap>,
}

#[derive(Debug, Default, Deserialize)]
struct ConfFile {
    #[serde(default)]
    storage: ConfStorage,
}

#[derive(Debug, Default, Deserialize)]
struct ConfStorage {
    #[serde(default)]
    driver: String,
    #[serde(default)]
    graphroot: String,
    #[serde(default)]
    runroot: String,
    #[serde(default)]
    options: toml::Table,
}

/// Per-driver keys honoured in `[storage.options]` and
/// `[storage.options.<driver>]`, in the order they become options.
const DRIVER_KEYS: &[&str] = &[
    "ignore_chown_errors",
    "mount_program",
    "mountopt",
    "size",
    "inodes",
    "skip_mount_home",
    "force_mask",
    "sync",
];

impl StoreOptions {
    /// Defaults, the configuration file and the environment.
    pub fn load() -> Result<Self> {
        let root = rustix::process::geteuid().is_root();
        let mut opts = Self::builtin(root);
        if let Some(path) = config_file(root) {
            opts.apply_file(&path)?;
        }
        opts.apply_env(|k| std::env::var(k).ok());
        Ok(opts)
    }

    fn builtin(root: bool) -> Self {
        if root {
            return Self {
                graph_root: DEFAULT_GRAPH_ROOT.into(),
                run_root: DEFAULT_RUN_ROOT.into(),
                ..Self::default()
            };
        }
        let uid = rustix::process::geteuid().as_raw();
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        let data = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".local/share"));
        let run = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(format!("/run/user/{uid}")));
        Self {
            graph_root: data.join("containers/storage"),
            run_root: run.join("containers"),
            ..Self::default()
        }
    }

    /// Applies a `storage.conf` file.
    pub fn apply_file(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        self.apply_conf_text(&text).map_err(|reason| Error::Config {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Applies the text of a `storage.conf` file.
    pub fn apply_conf_text(&mut self, text: &str) -> std::result::Result<(), String> {
        let conf: ConfFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let s = conf.storage;
        if !s.driver.is_empty() {
            self.driver = Some(s.driver.clone());
        }
        if !s.graphroot.is_empty() {
            self.graph_root = s.graphroot.into();
        }
        if !s.runroot.is_empty() {
            self.run_root = s.runroot.into();
        }
        let mut out = Vec::new();
        let driver = s.driver.as_str();
        if let Some(stores) = s.options.get("additionalimagestores") {
            let list = stores
                .as_array()
                .ok_or("additionalimagestores must be an array")?;
            for p in list {
                let p = p.as_str().ok_or("additionalimagestores: not a string")?;
                out.push(format!("{driver}.imagestore={p}"));
            }
        }
        if !driver.is_empty() {
            let section = s.options.get(driver).and_then(toml::Value::as_table);
            for key in DRIVER_KEYS {
                let v = section
                    .and_then(|t| t.get(*key))
                    .or_else(|| s.options.get(*key));
                if let Some(v) = v {
                    let v = match v {
                        toml::Value::String(s) if s.is_empty() => continue,
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    out.push(format!("{driver}.{key}={v}"));
                }
            }
        }
        self.driver_options = out;
        Ok(())
    }

    /// Applies `STORAGE_DRIVER` and `STORAGE_OPTS` (comma-separated; they
    /// replace the file's options).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        if let Some(d) = get("STORAGE_DRIVER").filter(|d| !d.is_empty()) {
            self.driver = Some(d);
        }
        if let Some(o) = get("STORAGE_OPTS").filter(|o| !o.is_empty()) {
            self.driver_options = o.split(',').map(str::to_string).collect();
        }
    }

    /// Selects a driver by name (a command-line choice). Options meant for
    /// another built-in driver (`vfs.key=…` when choosing overlay) are
    /// dropped, so that a configuration written for overlay does not break
    /// `-s vfs`; the rest, malformed ones and unknown prefixes included,
    /// stay for the driver to take or refuse.
    pub fn set_driver(&mut self, name: &str) {
        self.driver_options.retain(|o| {
            DriverOption::parse(o)
                .and_then(|opt| opt.is_for(name))
                .unwrap_or(true)
        });
        self.driver = Some(name.to_string());
    }
}

/// The configuration file that applies, if any.
pub fn config_file(root: bool) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CONTAINERS_STORAGE_CONF") {
        return Some(PathBuf::from(p));
    }
    let mut candidates = Vec::new();
    if !root {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
        if let Some(b) = base {
            candidates.push(b.join("containers/storage.conf"));
        }
    }
    candidates.push("/etc/containers/storage.conf".into());
    candidates.push("/usr/share/containers/storage.conf".into());
    candidates.into_iter().find(|p| p.exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_keys_become_driver_options() {
        let mut o = StoreOptions::default();
        o.apply_conf_text(
            r#"
[storage]
driver = "overlay"
graphroot = "/g"
runroot = "/r"
[storage.options]
additionalimagestores = ["/ais1", "/ais2"]
mount_program = "/usr/bin/fuse-overlayfs"
ignore_chown_errors = "true"
[storage.options.overlay]
mountopt = "nodev"
ignore_chown_errors = "false"
force_mask = "shared"
sync = "filesystem"
[storage.options.thinpool]
"#,
        )
        .unwrap();
        assert_eq!(o.driver.as_deref(), Some("overlay"));
        assert_eq!(o.graph_root, PathBuf::from("/g"));
        assert_eq!(o.run_root, PathBuf::from("/r"));
        assert_eq!(
            o.driver_options,
            [
                "overlay.imagestore=/ais1",
                "overlay.imagestore=/ais2",
                "overlay.ignore_chown_errors=false",
                "overlay.mount_program=/usr/bin/fuse-overlayfs",
                "overlay.mountopt=nodev",
                "overlay.force_mask=shared",
                "overlay.sync=filesystem",
            ]
        );
    }

    #[test]
    fn env_overrides_and_driver_flag_drops_foreign_options() {
        let mut o = StoreOptions::default();
        o.apply_conf_text(
            "[storage]\ndriver=\"overlay\"\n[storage.options.overlay]\nmountopt=\"nodev\"\n",
        )
        .unwrap();
        o.apply_env(|k| match k {
            "STORAGE_OPTS" => Some("overlay.mountopt=nodev,overlay.size=1G".into()),
            _ => None,
        });
        assert_eq!(o.driver_options.len(), 2);
        o.set_driver("vfs");
        assert!(o.driver_options.is_empty());
        assert_eq!(o.driver.as_deref(), Some("vfs"));
        // Unprefixed options and unknown prefixes stay: the driver takes
        // the one and refuses the other, naming it.
        o.driver_options = [
            ".mountopt=nodev",
            "mountopt=nodev",
            "overlay2.mountopt=nodev",
            "btrfs.min_space=1G",
            "ovelray.mount_program=/x",
            "novalue",
        ]
        .map(String::from)
        .into();
        o.set_driver("overlay");
        assert_eq!(
            o.driver_options,
            [
                ".mountopt=nodev",
                "mountopt=nodev",
                "overlay2.mountopt=nodev",
                "ovelray.mount_program=/x",
                "novalue"
            ]
        );
    }

    #[test]
    fn bad_conf_is_an_error() {
        let mut o = StoreOptions::default();
        assert!(o.apply_conf_text("[storage\n").is_err());
    }
}
