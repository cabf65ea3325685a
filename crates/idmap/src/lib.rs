//! ID maps for container layers.
//!
//! A layer's files are owned by *container* IDs (what a process inside the
//! container sees). When the layer lives in a user namespace, the files on disk
//! are owned by *host* IDs. An [`IdMap`] is one contiguous range
//! `container_id..container_id+size` ↔ `host_id..host_id+size`; an
//! [`IdMappings`] holds the ranges for users and for groups.
//!
//! The textual form is the one `containers-storage --uidmap` and
//! `/etc/subuid` use: `container:host:size`, several ranges joined by `,`.
//! The JSON form (`layers.json`'s `uidmap`/`gidmap`) is
//! `{"container_id":0,"host_id":100000,"size":65536}`.
//!
//! Everything is `u32`: Linux IDs are 32 bits and `u32::MAX` is the invalid ID.
//!
//! ```
//! use strata_idmap::{parse_maps, IdMappings, IdPair};
//! let ranges = parse_maps("0:100000:65536")?;
//! let maps = IdMappings::new(ranges.clone(), ranges);
//! let root = IdPair { uid: 0, gid: 0 };
//! let on_disk = maps.to_host(root)?;
//! assert_eq!(on_disk, IdPair { uid: 100000, gid: 100000 });
//! assert_eq!(maps.to_container(on_disk)?, root);
//! # Ok::<(), strata_idmap::Error>(())
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

/// Errors from parsing or translating ID maps.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A map string is not of the form `container:host:size[,…]`.
    #[error("invalid ID map {text:?}: {reason}")]
    Parse {
        /// The text that failed to parse.
        text: String,
        /// Why.
        reason: &'static str,
    },
    /// An ID has no counterpart in the map.
    #[error("{kind} {id} is not mapped ({direction})")]
    Unmapped {
        /// `"uid"` or `"gid"`.
        kind: &'static str,
        /// The ID that was looked up.
        id: u32,
        /// `"container to host"` or `"host to container"`.
        direction: &'static str,
    },
    /// An `/etc/subuid`-style file has no entry for the user.
    #[error("no subordinate IDs for {user:?} in {file}")]
    NoSubordinateIds {
        /// The user name looked up.
        user: String,
        /// The file read.
        file: String,
    },
    /// Reading a subordinate ID file failed.
    #[error("reading {file}: {source}")]
    Io {
        /// The file read.
        file: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// One contiguous range of IDs mapped between a container and the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdMap {
    /// First ID inside the container.
    pub container_id: u32,
    /// First ID on the host.
    pub host_id: u32,
    /// Number of IDs in the range.
    pub size: u32,
}

impl IdMap {
    /// Builds a range.
    pub const fn new(container_id: u32, host_id: u32, size: u32) -> Self {
        Self {
            container_id,
            host_id,
            size,
        }
    }

    fn translate(&self, id: u32, from: u32, to: u32) -> Option<u32> {
        let off = id.checked_sub(from)?;
        if off < self.size {
            to.checked_add(off)
        } else {
            None
        }
    }

    /// Host ID of a container ID, if this range covers it.
    pub fn to_host(&self, id: u32) -> Option<u32> {
        self.translate(id, self.container_id, self.host_id)
    }

    /// Container ID of a host ID, if this range covers it.
    pub fn to_container(&self, id: u32) -> Option<u32> {
        self.translate(id, self.host_id, self.container_id)
    }
}

impl fmt::Display for IdMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.container_id, self.host_id, self.size)
    }
}

/// Parses `container:host:size[,container:host:size…]`.
///
/// Whitespace around items is ignored; an empty string is an empty map.
/// Ranges whose end would overflow `u32` are rejected.
pub fn parse_maps(text: &str) -> Result<Vec<IdMap>> {
    let err = |reason| Error::Parse {
        text: text.to_string(),
        reason,
    };
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let mut parts = item.split(':');
        let mut next = || -> Result<u32> {
            parts
                .next()
                .ok_or_else(|| err("expected container:host:size"))?
                .trim()
                .parse::<u32>()
                .map_err(|_| err("not a 32-bit unsigned number"))
        };
        let (c, h, s) = (next()?, next()?, next()?);
        if parts.next().is_some() {
            return Err(err("expected container:host:size"));
        }
        if s == 0 {
            return Err(err("a range of size 0"));
        }
        if c.checked_add(s - 1).is_none() || h.checked_add(s - 1).is_none() {
            return Err(err("range overflows 32-bit IDs"));
        }
        out.push(IdMap::new(c, h, s));
    }
    Ok(out)
}

/// Formats maps as `container:host:size,…` (the inverse of [`parse_maps`]).
pub fn format_maps(maps: &[IdMap]) -> String {
    maps.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// One line of `/etc/subuid` or `/etc/subgid`: `name:start:count`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubIdRange {
    /// User name (or numeric uid as text).
    pub name: String,
    /// First subordinate ID.
    pub start: u32,
    /// Number of IDs.
    pub count: u32,
}

/// Parses the contents of an `/etc/subuid`-style file. Comments (`#`) and
/// malformed lines are skipped, as shadow-utils does.
pub fn parse_subid_file(contents: &[u8]) -> Vec<SubIdRange> {
    let text = String::from_utf8_lossy(contents);
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut p = l.split(':');
            let name = p.next()?.to_string();
            let start = p.next()?.trim().parse().ok()?;
            let count = p.next()?.trim().parse().ok()?;
            Some(SubIdRange { name, start, count })
        })
        .collect()
}

/// Builds the map a user namespace gets from subordinate ranges: container
/// IDs start at 0 and follow each range of `name` in file order.
pub fn maps_from_subids(ranges: &[SubIdRange], name: &str) -> Vec<IdMap> {
    let mut next = 0u32;
    let mut out = Vec::new();
    for r in ranges.iter().filter(|r| r.name == name && r.count > 0) {
        out.push(IdMap::new(next, r.start, r.count));
        next = next.saturating_add(r.count);
    }
    out
}

/// Reads `file` (for example `/etc/subuid`) and returns the maps for `name`.
pub fn read_subid_maps(file: &std::path::Path, name: &str) -> Result<Vec<IdMap>> {
    let data = std::fs::read(file).map_err(|e| Error::Io {
        file: file.display().to_string(),
        source: e,
    })?;
    let maps = maps_from_subids(&parse_subid_file(&data), name);
    if maps.is_empty() {
        return Err(Error::NoSubordinateIds {
            user: name.to_string(),
            file: file.display().to_string(),
        });
    }
    Ok(maps)
}

/// A user ID and group ID pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct IdPair {
    /// User ID.
    pub uid: u32,
    /// Group ID.
    pub gid: u32,
}

/// The user and group maps of a layer or mount.
///
/// Empty maps mean identity: every ID maps to itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct IdMappings {
    uids: Vec<IdMap>,
    gids: Vec<IdMap>,
}

fn lookup(maps: &[IdMap], id: u32, kind: &'static str, to_host: bool) -> Result<u32> {
    if maps.is_empty() {
        return Ok(id);
    }
    maps.iter()
        .find_map(|m| {
            if to_host {
                m.to_host(id)
            } else {
                m.to_container(id)
            }
        })
        .ok_or(Error::Unmapped {
            kind,
            id,
            direction: if to_host {
                "container to host"
            } else {
                "host to container"
            },
        })
}

impl IdMappings {
    /// Mappings from user and group ranges.
    pub fn new(uids: Vec<IdMap>, gids: Vec<IdMap>) -> Self {
        Self { uids, gids }
    }

    /// The identity mapping.
    pub fn identity() -> Self {
        Self::default()
    }

    /// True when both maps are empty (identity).
    pub fn is_identity(&self) -> bool {
        self.uids.is_empty() && self.gids.is_empty()
    }

    /// User ranges.
    pub fn uids(&self) -> &[IdMap] {
        &self.uids
    }

    /// Group ranges.
    pub fn gids(&self) -> &[IdMap] {
        &self.gids
    }

    /// Host IDs of a container pair.
    pub fn to_host(&self, pair: IdPair) -> Result<IdPair> {
        Ok(IdPair {
            uid: lookup(&self.uids, pair.uid, "uid", true)?,
            gid: lookup(&self.gids, pair.gid, "gid", true)?,
        })
    }

    /// Container IDs of a host pair.
    pub fn to_container(&self, pair: IdPair) -> Result<IdPair> {
        Ok(IdPair {
            uid: lookup(&self.uids, pair.uid, "uid", false)?,
            gid: lookup(&self.gids, pair.gid, "gid", false)?,
        })
    }

    /// Host pair of the container's root (0:0).
    pub fn root_pair(&self) -> Result<IdPair> {
        self.to_host(IdPair::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_table() {
        let cases: &[(&str, std::result::Result<Vec<IdMap>, &str>)] = &[
            ("", Ok(vec![])),
            ("0:100000:65536", Ok(vec![IdMap::new(0, 100000, 65536)])),
            (
                "0:1000:1, 1:100000:65536",
                Ok(vec![IdMap::new(0, 1000, 1), IdMap::new(1, 100000, 65536)]),
            ),
            ("0:1:2:3", Err("expected container:host:size")),
            ("0:1", Err("expected container:host:size")),
            ("a:1:2", Err("not a 32-bit unsigned number")),
            ("0:1:0", Err("a range of size 0")),
            ("4294967295:0:2", Err("range overflows 32-bit IDs")),
            ("-1:0:1", Err("not a 32-bit unsigned number")),
        ];
        for (text, want) in cases {
            let got = parse_maps(text);
            match want {
                Ok(v) => assert_eq!(&got.unwrap(), v, "{text}"),
                Err(reason) => match got {
                    Err(Error::Parse { reason: r, .. }) => assert_eq!(r, *reason, "{text}"),
                    other => panic!("{text}: {other:?}"),
                },
            }
        }
    }

    #[test]
    fn translate_several_ranges() {
        let m = IdMappings::new(
            parse_maps("0:1000:1,1:100000:65536").unwrap(),
            parse_maps("0:2000:10").unwrap(),
        );
        assert_eq!(
            m.to_host(IdPair { uid: 0, gid: 9 }).unwrap(),
            IdPair {
                uid: 1000,
                gid: 2009
            }
        );
        assert_eq!(
            m.to_host(IdPair { uid: 5, gid: 0 }).unwrap(),
            IdPair {
                uid: 100004,
                gid: 2000
            }
        );
        assert!(matches!(
            m.to_host(IdPair { uid: 65537, gid: 0 }),
            Err(Error::Unmapped {
                kind: "uid",
                id: 65537,
                ..
            })
        ));
        assert!(matches!(
            m.to_host(IdPair { uid: 0, gid: 10 }),
            Err(Error::Unmapped {
                kind: "gid",
                id: 10,
                ..
            })
        ));
        assert_eq!(
            m.to_container(IdPair {
                uid: 100000,
                gid: 2001
            })
            .unwrap(),
            IdPair { uid: 1, gid: 1 }
        );
        assert_eq!(
            m.root_pair().unwrap(),
            IdPair {
                uid: 1000,
                gid: 2000
            }
        );
        let id = IdMappings::identity();
        assert_eq!(
            id.to_host(IdPair { uid: 7, gid: 8 }).unwrap(),
            IdPair { uid: 7, gid: 8 }
        );
    }

    #[test]
    fn subid_files() {
        let f = b"# comment\nalice:100000:65536\nbob:200000:10\nalice:300000:5\nbroken\n";
        let r = parse_subid_file(f);
        assert_eq!(r.len(), 3);
        assert_eq!(
            maps_from_subids(&r, "alice"),
            vec![IdMap::new(0, 100000, 65536), IdMap::new(65536, 300000, 5)]
        );
        assert!(maps_from_subids(&r, "carol").is_empty());
    }

    proptest! {
        #[test]
        fn round_trip(c in 0u32..1_000_000, h in 0u32..1_000_000, s in 1u32..100_000, off in 0u32..100_000) {
            let m = IdMappings::new(vec![IdMap::new(c, h, s)], vec![IdMap::new(c, h, s)]);
            let p = IdPair { uid: c + off % s, gid: c };
            let host = m.to_host(p).unwrap();
            prop_assert_eq!(m.to_container(host).unwrap(), p);
            prop_assert_eq!(parse_maps(&format_maps(m.uids())).unwrap(), m.uids().to_vec());
        }
    }
}
