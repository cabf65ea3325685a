//! The two implementations under comparison, each with a store of its own
//! under the test's temp dir, driven through their command lines.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Which implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Strata,
    Reference,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Strata => "strata",
            Tool::Reference => "reference",
        }
    }

    /// The binary: `STRATA_DIFF_STRATA` names another strata build (a
    /// long run keeps its own copy while the tree is rebuilt).
    fn program(self) -> String {
        match self {
            Tool::Strata => std::env::var("STRATA_DIFF_STRATA")
                .unwrap_or_else(|_| env!("CARGO_BIN_EXE_strata").to_string()),
            Tool::Reference => strata_testsupport::REFERENCE.to_string(),
        }
    }

    pub fn other(self) -> Tool {
        match self {
            Tool::Strata => Tool::Reference,
            Tool::Reference => Tool::Strata,
        }
    }
}

/// One tool's store: graph and run roots and a storage.conf of its own, so
/// that neither the machine's configuration nor its default store is used.
pub struct Store {
    pub tool: Tool,
    pub driver: String,
    /// `--storage-opt` values.
    pub options: Vec<String>,
    pub graph: PathBuf,
    pub run: PathBuf,
    conf: PathBuf,
}

/// What a command printed, or why it failed.
pub type CmdResult = Result<Vec<u8>, String>;

impl Store {
    /// A store with its graph root at `graph` and the rest under `dir`.
    pub fn new(tool: Tool, variant: &super::Variant, graph: PathBuf, dir: &Path) -> Self {
        let driver = variant.driver;
        let run = dir.join(format!("{}-run", tool.name()));
        let conf = dir.join(format!("{}-storage.conf", tool.name()));
        std::fs::write(&conf, format!("[storage]\ndriver = \"{driver}\"\n")).unwrap();
        Self {
            tool,
            driver: driver.to_string(),
            options: variant.options.iter().map(|o| o.to_string()).collect(),
            graph,
            run,
            conf,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(self.tool.program());
        c.env("CONTAINERS_STORAGE_CONF", &self.conf)
            .env_remove("STORAGE_DRIVER")
            .env_remove("STORAGE_OPTS")
            .arg("-g")
            .arg(&self.graph)
            .arg("-R")
            .arg(&self.run)
            .arg("-s")
            .arg(&self.driver);
        for o in &self.options {
            c.arg("--storage-opt").arg(o);
        }
        c.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Runs a command; its stdout, or its exit status and stderr.
    pub fn run(&self, args: &[&str]) -> CmdResult {
        let out: Output = self
            .command(args)
            .output()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", self.tool.name()));
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(format!(
                "{} {args:?}: {}: {}",
                self.tool.name(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Runs a command that must succeed; its stdout as text, trimmed.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8(out).unwrap().trim().to_string()
    }

    /// `create-layer [parent]`: the new layer's ID.
    pub fn create_layer(&self, parent: Option<&str>) -> String {
        let mut args = vec!["create-layer"];
        args.extend(parent);
        first_line(&self.ok(&args))
    }

    /// `import-layer -f tar [parent]`: the new layer's ID.
    pub fn import_layer(&self, tar: &Path, parent: Option<&str>) -> Result<String, String> {
        let tar = tar.to_str().unwrap();
        let mut args = vec!["import-layer", "-f", tar];
        args.extend(parent);
        let out = self.run(&args)?;
        Ok(first_line(&String::from_utf8_lossy(&out)))
    }

    pub fn mount(&self, id: &str) -> PathBuf {
        PathBuf::from(self.ok(&["mount", id]))
    }

    pub fn unmount(&self, id: &str) {
        self.ok(&["unmount", id]);
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}
