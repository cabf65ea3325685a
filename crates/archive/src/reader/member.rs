//! Reading the header blocks of one member: PAX and GNU meta records, the
//! main header, GNU sparse extension blocks and PAX 1.0 sparse maps.

use super::fields::{self, cstr};
use super::{take_budget, Current, RawSink, Reader, BLOCK, MAX_HEADER_RECORD, MAX_MEMBER_HEADERS};
use crate::entry::{EntryKind, Header, SparseRegion, Timestamp, Xattr};
use crate::tarsplit::Crc64;
use crate::{Error, Result};

/// What the reader knows about the member being read beyond its [`Header`].
#[derive(Debug, Clone)]
pub struct MemberInfo {
    /// The parsed header.
    pub header: Header,
    /// Name as archived after PAX/GNU long names (Go's `Header.Name`); this
    /// is the name tar-split records.
    pub name: Vec<u8>,
    /// Size tar-split records (the logical size; for header-only types the
    /// size field as written).
    pub record_size: u64,
    /// Type flag of the main header.
    pub typeflag: u8,
}

/// PAX keys collected from `x` headers for the next member.
#[derive(Default)]
struct Pax {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
    uid: Option<u32>,
    gid: Option<u32>,
    uname: Option<Vec<u8>>,
    gname: Option<Vec<u8>>,
    mtime: Option<Timestamp>,
    atime: Option<Timestamp>,
    xattrs: Vec<Xattr>,
    sparse: PaxSparse,
}

#[derive(Default)]
struct PaxSparse {
    major: Option<u64>,
    minor: Option<u64>,
    name: Option<Vec<u8>>,
    realsize: Option<u64>,
    map: Vec<SparseRegion>,
    pending_offset: Option<u64>,
    any: bool,
}

impl Pax {
    fn merge(&mut self, body: &[u8]) -> Result<()> {
        for (key, value) in fields::pax_records(body)? {
            let k = std::str::from_utf8(key).unwrap_or("");
            // An empty value removes the key (POSIX); we treat it as unset.
            if value.is_empty() && !key.starts_with(b"SCHILY.xattr.") {
                continue;
            }
            match k {
                "path" => self.path = Some(value.to_vec()),
                "linkpath" => self.linkpath = Some(value.to_vec()),
                "size" => self.size = Some(fields::pax_decimal(value, k)?),
                "uid" | "gid" => {
                    let v = u32::try_from(fields::pax_decimal(value, k)?)
                        .map_err(|_| Error::InvalidHeader(format!("PAX {k} out of range")))?;
                    if k == "uid" {
                        self.uid = Some(v)
                    } else {
                        self.gid = Some(v)
                    }
                }
                "uname" => self.uname = Some(value.to_vec()),
                "gname" => self.gname = Some(value.to_vec()),
                "mtime" => self.mtime = Some(fields::pax_time(value, k)?),
                "atime" => self.atime = Some(fields::pax_time(value, k)?),
                _ if key.starts_with(b"SCHILY.xattr.") => {
                    let name = key[b"SCHILY.xattr.".len()..].to_vec();
                    self.xattrs.retain(|x| x.name != name);
                    self.xattrs.push(Xattr {
                        name,
                        value: value.to_vec(),
                    });
                }
                _ if key.starts_with(b"GNU.sparse.") => self.sparse.merge(k, value)?,
                _ => {}
            }
        }
        Ok(())
    }
}

impl PaxSparse {
    fn merge(&mut self, k: &str, value: &[u8]) -> Result<()> {
        self.any = true;
        match k {
            "GNU.sparse.major" => self.major = Some(fields::pax_decimal(value, k)?),
            "GNU.sparse.minor" => self.minor = Some(fields::pax_decimal(value, k)?),
            "GNU.sparse.name" => self.name = Some(value.to_vec()),
            "GNU.sparse.size" | "GNU.sparse.realsize" => {
                self.realsize = Some(fields::pax_decimal(value, k)?)
            }
            "GNU.sparse.map" => self.map = fields::sparse_map_01(value)?,
            // 0.0: repeated offset/numbytes pairs, in order.
            "GNU.sparse.offset" => self.pending_offset = Some(fields::pax_decimal(value, k)?),
            "GNU.sparse.numbytes" => {
                let offset = self.pending_offset.take().ok_or_else(|| {
                    Error::InvalidHeader("GNU.sparse.numbytes without offset".into())
                })?;
                let length = fields::pax_decimal(value, k)?;
                self.map.push(SparseRegion { offset, length });
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether the keys describe a sparse file (not just a renamed one).
    fn is_sparse(&self) -> bool {
        self.map_in_data() || !self.map.is_empty() || self.realsize.is_some()
    }

    /// Format 1.0 keeps the map at the start of the data.
    fn map_in_data(&self) -> bool {
        self.major == Some(1)
    }
}

impl<R: super::Source, S: RawSink> Reader<R, S> {
    /// Reads header blocks up to and including the next member's main header
    /// (and its sparse extensions); `None` at the end of the archive.
    pub(super) fn read_member(&mut self) -> Result<Option<Current>> {
        let mut pax = Pax::default();
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pending = false;
        let mut budget = MAX_MEMBER_HEADERS;
        loop {
            if self.read_block()?.is_none() {
                if pending {
                    return Err(Error::UnexpectedEof(
                        "after an extended header, before its member".into(),
                    ));
                }
                return Ok(None);
            }
            take_budget(&mut budget, BLOCK as u64)?;
            if self.block.iter().all(|&b| b == 0) {
                return self.second_zero_block().map(|()| None);
            }
            if !fields::checksum_ok(&self.block) {
                return Err(Error::InvalidHeader("header checksum mismatch".into()));
            }
            let h = tar::Header::from_byte_slice(&self.block[..]).clone();
            let typeflag = h.as_old().linkflag[0];
            let size = fields::unsigned(&h.as_old().size, "size")?;
            match typeflag {
                b'x' => {
                    let body = self.read_record(size, "PAX extended header", &mut budget)?;
                    pax.merge(&body)?;
                    pending = true;
                }
                b'g' => {
                    // Global headers are validated and recorded, and create
                    // nothing. Go's reader returns them as a member of size 0,
                    // so tar-split has a file entry for them: mirror that.
                    let body = self.read_record_unpadded(size, &mut budget)?;
                    fields::pax_records(&body)?;
                    let name = h.path_bytes().into_owned();
                    self.sink.member(&name, 0, None)?;
                    self.read_padding(pad_of(size))?;
                    pax = Pax::default();
                    (long_name, long_link, pending) = (None, None, false);
                }
                b'L' | b'K' => {
                    let what = if typeflag == b'L' {
                        "GNU long name"
                    } else {
                        "GNU long link name"
                    };
                    let body = self.read_record(size, what, &mut budget)?;
                    let v = cstr(&body).to_vec();
                    if typeflag == b'L' {
                        long_name = Some(v)
                    } else {
                        long_link = Some(v)
                    }
                    pending = true;
                }
                _ => {
                    let member = self.main_header(&h, pax, long_name, long_link, &mut budget)?;
                    return Ok(Some(member));
                }
            }
        }
    }

    /// One zero block was read: a second one ends the archive; the input
    /// may also simply end here (Go accepts that).
    fn second_zero_block(&mut self) -> Result<()> {
        if self.read_block()?.is_none() {
            return Ok(());
        }
        if self.block.iter().all(|&b| b == 0) {
            return Ok(());
        }
        Err(Error::InvalidHeader(
            "zero block followed by a non-zero block".into(),
        ))
    }

    fn read_record_unpadded(&mut self, size: u64, budget: &mut u64) -> Result<Vec<u8>> {
        if size > MAX_HEADER_RECORD {
            return Err(Error::HeaderTooLarge {
                what: "PAX global header",
                size,
                limit: MAX_HEADER_RECORD,
            });
        }
        take_budget(budget, size)?;
        let mut buf = vec![0; size as usize];
        let got = super::read_full(&mut self.input, &mut buf)?;
        self.sink.raw(&buf[..got])?;
        if got as u64 != size {
            return Err(Error::UnexpectedEof("inside a PAX global header".into()));
        }
        Ok(buf)
    }

    fn main_header(
        &mut self,
        h: &tar::Header,
        pax: Pax,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
        budget: &mut u64,
    ) -> Result<Current> {
        let old = h.as_old();
        let typeflag = old.linkflag[0];
        let gnu = h.as_gnu();
        let mut name = pax
            .path
            .clone()
            .or(long_name)
            .unwrap_or_else(|| cstr(&h.path_bytes()).to_vec());
        let link = pax
            .linkpath
            .clone()
            .or(long_link)
            .unwrap_or_else(|| cstr(&old.linkname).to_vec());
        let mut size = match pax.size {
            Some(s) => s,
            None => fields::unsigned(&old.size, "size")?,
        };
        let kind = match typeflag {
            b'0' | b'7' | b'S' => EntryKind::File,
            // V7 archives mark directories by a trailing slash.
            0 if name.ends_with(b"/") => EntryKind::Directory,
            0 => EntryKind::File,
            b'1' => EntryKind::HardLink {
                target: fields::normalize(&link),
            },
            b'2' => EntryKind::Symlink { target: link },
            b'3' | b'4' => {
                let (major, minor) = match h.as_ustar().map(|u| (u.dev_major, u.dev_minor)) {
                    Some((ma, mi)) => (ma, mi),
                    None => match gnu {
                        Some(g) => (g.dev_major, g.dev_minor),
                        None => ([0; 8], [0; 8]),
                    },
                };
                let major = fields::small(&major, "devmajor")?;
                let minor = fields::small(&minor, "devminor")?;
                if typeflag == b'3' {
                    EntryKind::CharDevice { major, minor }
                } else {
                    EntryKind::BlockDevice { major, minor }
                }
            }
            b'5' => EntryKind::Directory,
            b'6' => EntryKind::Fifo,
            other => {
                return Err(Error::Unsupported(format!(
                    "tar entry type {:?} of {:?}",
                    other as char,
                    String::from_utf8_lossy(&name)
                )))
            }
        };
        // Header-only types carry no content whatever their size field says
        // (as in Go's reader); the recorded size stays the field's value.
        let record_size_for_header_only = size;
        if kind != EntryKind::File {
            size = 0;
        }

        let mut sparse: Option<Vec<SparseRegion>> = None;
        let mut logical = size;
        if typeflag == b'S' {
            let g = gnu.ok_or_else(|| {
                Error::InvalidHeader("GNU sparse member without a GNU header".into())
            })?;
            let mut map = Vec::new();
            push_gnu_sparse(&mut map, &g.sparse)?;
            let mut extended = g.isextended[0] != 0;
            while extended {
                if self.read_block()?.is_none() {
                    return Err(Error::UnexpectedEof(
                        "inside sparse extension headers".into(),
                    ));
                }
                take_budget(budget, BLOCK as u64)?;
                let mut ext = tar::GnuExtSparseHeader::new();
                ext.as_mut_bytes().copy_from_slice(&self.block[..]);
                push_gnu_sparse(&mut map, &ext.sparse)?;
                extended = ext.isextended[0] != 0;
            }
            logical = fields::unsigned(&g.realsize, "realsize")?;
            sparse = Some(map);
        } else if pax.sparse.any && kind == EntryKind::File {
            if let Some(n) = &pax.sparse.name {
                name.clone_from(n);
            }
        }
        if sparse.is_none() && kind == EntryKind::File && pax.sparse.is_sparse() {
            let map = if pax.sparse.map_in_data() {
                let (map, used) = self.read_sparse_map_10(size, budget)?;
                size -= used;
                map
            } else {
                pax.sparse.map
            };
            logical = pax.sparse.realsize.unwrap_or(size);
            sparse = Some(map);
        }
        if let Some(map) = &sparse {
            let stored = fields::check_sparse(map, logical)?;
            if stored != size {
                return Err(Error::InvalidHeader(format!(
                    "sparse map covers {stored} bytes but {size} are stored"
                )));
            }
        }

        let mtime = match pax.mtime {
            Some(t) => t,
            None => Timestamp {
                sec: fields::numeric(&old.mtime, "mtime")?,
                nsec: 0,
            },
        };
        let atime = match (pax.atime, gnu) {
            (Some(t), _) => Some(t),
            (None, Some(g)) if g.atime[0] != 0 => Some(Timestamp {
                sec: fields::numeric(&g.atime, "atime")?,
                nsec: 0,
            }),
            _ => None,
        };
        let names = h
            .as_ustar()
            .map(|u| (u.uname, u.gname))
            .or(gnu.map(|g| (g.uname, g.gname)));
        let nonempty = |v: &[u8]| (!v.is_empty()).then(|| v.to_vec());
        let uname = pax
            .uname
            .or_else(|| names.and_then(|(u, _)| nonempty(cstr(&u))));
        let gname = pax
            .gname
            .or_else(|| names.and_then(|(_, g)| nonempty(cstr(&g))));
        let header = Header {
            path: fields::normalize(&name),
            raw_path: name.clone(),
            mode: (fields::numeric(&old.mode, "mode")? & 0o7777) as u32,
            uid: match pax.uid {
                Some(v) => v,
                None => fields::small(&old.uid, "uid")?,
            },
            gid: match pax.gid {
                Some(v) => v,
                None => fields::small(&old.gid, "gid")?,
            },
            uname,
            gname,
            mtime,
            atime,
            size: if kind == EntryKind::File { logical } else { 0 },
            sparse: sparse.clone(),
            xattrs: pax.xattrs,
            kind,
        };
        let record_size = if header.kind == EntryKind::File {
            logical
        } else {
            record_size_for_header_only
        };
        let regions = sparse.unwrap_or_else(|| {
            vec![SparseRegion {
                offset: 0,
                length: size,
            }]
        });
        Ok(Current {
            info: MemberInfo {
                header,
                name,
                record_size,
                typeflag,
            },
            regions,
            region: 0,
            within: 0,
            stored_left: size,
            // A 1.0 sparse map takes whole blocks, so the padding follows
            // from the remaining stored size alone.
            pad: pad_of(size),
            crc_pos: 0,
            crc: self.record.then(Crc64::new),
        })
    }

    /// Reads the GNU sparse 1.0 map at the start of the data, in whole
    /// blocks (recorded as raw bytes); returns it and the bytes it used.
    fn read_sparse_map_10(
        &mut self,
        size: u64,
        budget: &mut u64,
    ) -> Result<(Vec<SparseRegion>, u64)> {
        let mut buf = Vec::new();
        loop {
            if buf.len() as u64 + BLOCK as u64 > size.min(MAX_HEADER_RECORD) {
                return Err(Error::InvalidHeader(
                    "GNU sparse 1.0 map too large or beyond the data".into(),
                ));
            }
            if self.read_block()?.is_none() {
                return Err(Error::UnexpectedEof("inside a sparse map".into()));
            }
            take_budget(budget, BLOCK as u64)?;
            buf.extend_from_slice(&self.block[..]);
            if let Some((map, _)) = fields::sparse_map_10(&buf)? {
                let used = buf.len() as u64;
                return Ok((map, used));
            }
        }
    }
}

fn push_gnu_sparse(map: &mut Vec<SparseRegion>, entries: &[tar::GnuSparseHeader]) -> Result<()> {
    for e in entries {
        if e.is_empty() {
            continue;
        }
        let offset = fields::unsigned(&e.offset, "sparse offset")?;
        let length = fields::unsigned(&e.numbytes, "sparse length")?;
        map.push(SparseRegion { offset, length });
    }
    Ok(())
}

fn pad_of(size: u64) -> usize {
    ((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64) as usize
}
