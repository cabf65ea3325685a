//! Moving files from one mapping to another: the owner a file has on disk
//! under the maps it was written with, re-expressed under other maps.
//!
//! A [`Shift`] answers, per ID, what a re-owning walk writes: the on-disk
//! (host) ID is taken back to its container ID through the old maps — an
//! ID the old maps do not cover is an error, since nothing says what it
//! stands for — and forward to a host ID through the new maps, where a
//! container ID the new maps leave out becomes the kernel's overflow ID
//! (what a user namespace shows for it, and what containers-storage
//! writes). [`compose`] gives the same translation as user-namespace map
//! lines, for an idmapped mount that shifts without touching a file.

use crate::{Error, IdMap, IdMappings, IdPair, Result, MAX_ID};

/// The overflow IDs the kernel shows for unmapped IDs
/// (`/proc/sys/kernel/overflowuid`, `overflowgid`; 65534 by default).
pub const DEFAULT_OVERFLOW: IdPair = IdPair {
    uid: 65534,
    gid: 65534,
};

/// Old and new maps of one side, for [`Shift`].
#[derive(Debug, Clone)]
struct Side {
    from: Vec<IdMap>,
    to: Vec<IdMap>,
    overflow: u32,
    kind: &'static str,
}

impl Side {
    fn map(&self, id: u32) -> Result<u32> {
        let c = if self.from.is_empty() {
            id
        } else {
            self.from
                .iter()
                .find_map(|m| m.to_container(id))
                .ok_or(Error::Unmapped {
                    kind: self.kind,
                    id,
                    direction: "host to container",
                })?
        };
        if self.to.is_empty() {
            return Ok(c);
        }
        Ok(self
            .to
            .iter()
            .find_map(|m| m.to_host(c))
            .unwrap_or(self.overflow))
    }
}

/// The translation of on-disk owners from one mapping to another.
#[derive(Debug, Clone)]
pub struct Shift {
    uids: Side,
    gids: Side,
}

impl Shift {
    /// Files written under `from` shown under `to`; container IDs that
    /// `to` leaves out become `overflow`.
    pub fn new(from: &IdMappings, to: &IdMappings, overflow: IdPair) -> Self {
        Self {
            uids: Side {
                from: from.uids().to_vec(),
                to: to.uids().to_vec(),
                overflow: overflow.uid,
                kind: "uid",
            },
            gids: Side {
                from: from.gids().to_vec(),
                to: to.gids().to_vec(),
                overflow: overflow.gid,
                kind: "gid",
            },
        }
    }

    /// Whether the shift changes nothing (same maps on both sides).
    pub fn is_identity(&self) -> bool {
        self.uids.from == self.uids.to && self.gids.from == self.gids.to
    }

    /// The new on-disk owner of a file owned by `old`.
    pub fn owner(&self, old: IdPair) -> Result<IdPair> {
        Ok(IdPair {
            uid: self.uids.map(old.uid)?,
            gid: self.gids.map(old.gid)?,
        })
    }

    /// The new on-disk user ID for `id` (ACL entries, capability root IDs).
    pub fn uid(&self, id: u32) -> Result<u32> {
        self.uids.map(id)
    }

    /// The new on-disk group ID for `id`.
    pub fn gid(&self, id: u32) -> Result<u32> {
        self.gids.map(id)
    }
}

/// The whole ID space as one range (an empty map means identity).
const ALL: IdMap = IdMap::new(0, 0, MAX_ID + 1);

/// User-namespace map lines (`inside outside count`, inside = the ID on
/// disk under `from`, outside = the ID shown under `to`) of the shift from
/// `from` to `to` for one side. IDs on disk that `from` does not cover, or
/// whose container IDs `to` leaves out, have no line: an idmapped mount
/// shows them as the overflow ID.
pub fn compose(from: &[IdMap], to: &[IdMap]) -> Vec<IdMap> {
    let from = if from.is_empty() { &[ALL][..] } else { from };
    let to = if to.is_empty() { &[ALL][..] } else { to };
    let mut out = Vec::new();
    for f in from {
        for t in to {
            // The container IDs both ranges cover.
            let lo = u64::from(f.container_id.max(t.container_id));
            let hi = (u64::from(f.container_id) + u64::from(f.size))
                .min(u64::from(t.container_id) + u64::from(t.size));
            if lo >= hi {
                continue;
            }
            let inside = u64::from(f.host_id) + (lo - u64::from(f.container_id));
            let outside = u64::from(t.host_id) + (lo - u64::from(t.container_id));
            // Both fit: they lie within checked ranges.
            out.push(IdMap::new(
                u32::try_from(inside).unwrap_or(MAX_ID),
                u32::try_from(outside).unwrap_or(MAX_ID),
                u32::try_from(hi - lo).unwrap_or(MAX_ID),
            ));
        }
    }
    out.sort_by_key(|m| m.container_id);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_maps;

    fn maps(u: &str, g: &str) -> IdMappings {
        IdMappings::new(parse_maps(u).unwrap(), parse_maps(g).unwrap())
    }

    #[test]
    fn shift_as_the_reference() {
        // Measured with containers-storage 1.43 (vfs): a host-mapped parent,
        // a child with --uidmap 1:100000:10 --gidmap 0:200000:3.
        let s = Shift::new(
            &IdMappings::identity(),
            &maps("1:100000:10", "0:200000:3"),
            DEFAULT_OVERFLOW,
        );
        let table = [
            ((0, 7), (65534, 65534)),
            ((1, 1), (100000, 200001)),
            ((1, 7), (100000, 65534)),
            ((2, 9), (100001, 65534)),
            ((5, 5), (100004, 65534)),
            ((7, 0), (100006, 200000)),
        ];
        for ((u, g), (nu, ng)) in table {
            assert_eq!(
                s.owner(IdPair { uid: u, gid: g }).unwrap(),
                IdPair { uid: nu, gid: ng },
                "{u}:{g}"
            );
        }
        // Back from mapped to other maps; an ID the old maps lack fails.
        let s = Shift::new(
            &maps("0:100000:6", "0:200000:6"),
            &maps("0:300000:10", "0:400000:10"),
            DEFAULT_OVERFLOW,
        );
        assert_eq!(
            s.owner(IdPair {
                uid: 100005,
                gid: 200001
            })
            .unwrap(),
            IdPair {
                uid: 300005,
                gid: 400001
            }
        );
        assert!(matches!(
            s.owner(IdPair {
                uid: 65534,
                gid: 200000
            }),
            Err(Error::Unmapped { id: 65534, .. })
        ));
    }

    #[test]
    fn compose_agrees_with_shift() {
        let cases = [
            ("", "0:100000:6"),
            ("0:100000:6", "0:300000:10"),
            ("0:1000:1,1:100000:65536", "0:200000:100,100:500000:65536"),
            ("0:100000:65536", ""),
            ("5:7:3", "0:50:6,10:90:10"),
        ];
        for (from, to) in cases {
            let (f, t) = (parse_maps(from).unwrap(), parse_maps(to).unwrap());
            let lines = compose(&f, &t);
            let s = Shift::new(
                &IdMappings::new(f.clone(), f.clone()),
                &IdMappings::new(t.clone(), t.clone()),
                DEFAULT_OVERFLOW,
            );
            for d in (0..200).chain(99990..100200).chain(199990..200200) {
                let via_lines = lines.iter().find_map(|m| m.to_host(d));
                match s.uid(d) {
                    Ok(n) if n == DEFAULT_OVERFLOW.uid && via_lines.is_none() => {}
                    Ok(n) => assert_eq!(via_lines, Some(n), "{from} -> {to}: {d}"),
                    Err(_) => assert_eq!(via_lines, None, "{from} -> {to}: {d}"),
                }
            }
        }
    }
}
