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

/// The kernel's overflow IDs (`/proc/sys/kernel/overflow{u,g}id`), which
/// stand for IDs a mapping leaves out; [`DEFAULT_OVERFLOW`] where they
/// cannot be read.
pub fn kernel_overflow() -> IdPair {
    let read = |f: &str, dflt: u32| {
        std::fs::read_to_string(f)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(dflt)
    };
    IdPair {
        uid: read("/proc/sys/kernel/overflowuid", DEFAULT_OVERFLOW.uid),
        gid: read("/proc/sys/kernel/overflowgid", DEFAULT_OVERFLOW.gid),
    }
}

/// The file capability xattr.
pub const CAPABILITY: &str = "security.capability";
/// The POSIX access ACL xattr.
pub const ACL_ACCESS: &str = "system.posix_acl_access";
/// The POSIX default ACL xattr (directories).
pub const ACL_DEFAULT: &str = "system.posix_acl_default";

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

    /// The value of xattr `name` with the IDs it holds moved: the root ID
    /// of a version 3 [`CAPABILITY`], the user and group entries of a
    /// POSIX ACL. Other xattrs, and IDs the old maps do not cover, are
    /// left as they are.
    pub fn xattr(&self, name: &[u8], v: &[u8]) -> Vec<u8> {
        let mut out = v.to_vec();
        if name == CAPABILITY.as_bytes() {
            // vfs_ns_cap_data: magic_etc (LE u32, revision in the top
            // byte), two {permitted, inheritable} pairs, then the root ID.
            const REVISION_3: u32 = 0x0300_0000;
            if v.len() == 24 && le32(v, 0) & 0xff00_0000 == REVISION_3 {
                if let Ok(root) = self.uid(le32(v, 20)) {
                    out[20..24].copy_from_slice(&root.to_le_bytes());
                }
            }
        } else if name == ACL_ACCESS.as_bytes() || name == ACL_DEFAULT.as_bytes() {
            // posix_acl_xattr_header (LE u32 version 2), then entries of
            // {tag: u16, perm: u16, id: u32}; only ACL_USER and ACL_GROUP
            // entries carry an ID.
            const ACL_USER: u16 = 0x02;
            const ACL_GROUP: u16 = 0x08;
            if v.len() >= 4 && le32(v, 0) == 2 && (v.len() - 4).is_multiple_of(8) {
                for off in (4..v.len()).step_by(8) {
                    let tag = u16::from_le_bytes([v[off], v[off + 1]]);
                    let id = le32(v, off + 4);
                    let moved = match tag {
                        ACL_USER => self.uid(id),
                        ACL_GROUP => self.gid(id),
                        _ => continue,
                    };
                    if let Ok(n) = moved {
                        out[off + 4..off + 8].copy_from_slice(&n.to_le_bytes());
                    }
                }
            }
        }
        out
    }
}

fn le32(v: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([v[at], v[at + 1], v[at + 2], v[at + 3]])
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
    fn xattr_values_move() {
        let m = |host: u32| maps(&format!("0:{host}:65536"), &format!("0:{host}:65536"));
        let shift = Shift::new(&m(100000), &m(200000), DEFAULT_OVERFLOW);
        // v3 capability, root ID 100000 → 200000; v2 untouched.
        let mut v3 = vec![0u8; 24];
        v3[0..4].copy_from_slice(&0x0300_0000u32.to_le_bytes());
        v3[4] = 0x20;
        v3[20..24].copy_from_slice(&100000u32.to_le_bytes());
        let got = shift.xattr(CAPABILITY.as_bytes(), &v3);
        assert_eq!(le32(&got, 20), 200000);
        assert_eq!(got[..20], v3[..20]);
        let mut v2 = vec![0u8; 20];
        v2[0..4].copy_from_slice(&0x0200_0000u32.to_le_bytes());
        assert_eq!(shift.xattr(CAPABILITY.as_bytes(), &v2), v2);
        // ACL: user::rw-, user:100005:r--, group::r--, group:100007:rw-,
        // mask, other.
        let entries: [(u16, u16, u32); 6] = [
            (0x01, 6, u32::MAX),
            (0x02, 4, 100005),
            (0x04, 4, u32::MAX),
            (0x08, 6, 100007),
            (0x10, 6, u32::MAX),
            (0x20, 4, u32::MAX),
        ];
        let mut acl = 2u32.to_le_bytes().to_vec();
        for (t, p, id) in entries {
            acl.extend_from_slice(&t.to_le_bytes());
            acl.extend_from_slice(&p.to_le_bytes());
            acl.extend_from_slice(&id.to_le_bytes());
        }
        let got = shift.xattr(ACL_ACCESS.as_bytes(), &acl);
        assert_eq!(le32(&got, 4 + 8 + 4), 200005);
        assert_eq!(le32(&got, 4 + 24 + 4), 200007);
        assert_eq!(le32(&got, 4 + 4), u32::MAX);
        // Not an ID-bearing xattr, or malformed: as it was.
        assert_eq!(shift.xattr(b"user.x", &acl), acl);
        assert_eq!(shift.xattr(ACL_ACCESS.as_bytes(), &acl[..9]), &acl[..9]);
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
