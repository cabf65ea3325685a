//! `copy [LAYER:]/src … LAYER:/dest`: host files or another layer's files
//! copied into a layer ([`Store::copy`]; neither side leaves its layer).

use std::process::ExitCode;

use anyhow::{Context, Result};
use strata_store::{CopyPath, CopyRequest, Store};

use crate::args::CopyOpts;

fn parse_chown(s: &str) -> Result<(u32, u32)> {
    let (u, g) = s.split_once(':').unwrap_or((s, s));
    Ok((
        u.parse()
            .with_context(|| format!("bad --chown uid {u:?}"))?,
        g.parse()
            .with_context(|| format!("bad --chown gid {g:?}"))?,
    ))
}

/// `copy`.
pub(super) fn run(s: &Store, o: &CopyOpts) -> Result<ExitCode> {
    let owner = o.chown.as_deref().map(parse_chown).transpose()?;
    let (dest, sources) = o
        .paths
        .split_last()
        .context("copy: need a source and a destination")?;
    s.copy(&CopyRequest {
        sources: sources.iter().map(|p| CopyPath::parse(p)).collect(),
        dest: CopyPath::parse(dest),
        owner,
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners() {
        assert_eq!(parse_chown("1:2").unwrap(), (1, 2));
        assert_eq!(parse_chown("7").unwrap(), (7, 7));
        assert!(parse_chown("x:1").is_err());
    }
}
