//! A streaming tar writer producing what containers/storage's `diff` emits.
//!
//! Members are POSIX ustar (`ustar\0` + `00`) headers; whatever does not fit
//! a ustar field goes into a PAX extended header (`x`) written just before
//! the member, as Go's `archive/tar` does for containers/storage:
//!
//! - names longer than 100 bytes are split into the 155-byte `prefix` and the
//!   100-byte `name` field at a `/` when possible and no PAX header is needed
//!   for another reason, else written as PAX `path`;
//! - the ustar fields of strings that went into PAX keep their ASCII
//!   characters only (Go's `toASCII`), cut to the field's size;
//! - link targets longer than 100 bytes become PAX `linkpath`;
//! - uid/gid above `0o7777777` and sizes of 8 GiB and more become PAX
//!   `uid`/`gid`/`size`;
//! - xattrs become `SCHILY.xattr.NAME` records;
//! - times are whole seconds (the reference truncates them) unless
//!   [`TimePrecision::Nanoseconds`] is chosen, which adds PAX `mtime`/`atime`
//!   records with nanoseconds when they are not whole.
//!
//! PAX records are sorted by key and the PAX header is named
//! `DIR/PaxHeaders.0/BASE` (cut to 100 bytes), as the reference names them.
//! The mode field carries the file type bits (`0100644`, `040755`), directory
//! names end with `/`, and the archive ends with two zero blocks.
//!
//! [`TarWriter::write_raw`] lets tests put arbitrary bytes into the stream to
//! build hostile archives.

use std::io::{Read, Write};

use crate::entry::{EntryKind, Header, Timestamp};
use crate::{Error, Result};

const BLOCK: usize = 512;

/// Whether member times keep their sub-second part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimePrecision {
    /// Whole seconds, as the reference's `diff` writes them.
    #[default]
    Seconds,
    /// Nanoseconds through PAX `mtime`/`atime` records when not whole.
    Nanoseconds,
}

/// What the mode field of a member holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModeField {
    /// Permission bits plus the file type bits (`0100644`), as the
    /// reference writes members made from files.
    #[default]
    WithType,
    /// Permission bits only (`0000000`), as the reference writes the
    /// whiteouts and opaque markers it makes up.
    PermissionsOnly,
}

/// Options of a [`TarWriter`].
#[derive(Debug, Clone, Copy, Default)]
pub struct WriterOptions {
    /// Time precision of member headers.
    pub time_precision: TimePrecision,
}

/// Writes tar members into any [`Write`].
///
/// Which name a member gets: [`Header::raw_path`] verbatim when it differs
/// from [`Header::path`] (so tests can write `/abs` or `./x` names);
/// otherwise `path`, with a trailing `/` for directories.
pub struct TarWriter<W: Write> {
    out: W,
    opts: WriterOptions,
    written: u64,
}

impl<W: Write> TarWriter<W> {
    /// A writer with default options.
    pub fn new(out: W) -> Self {
        Self::with_options(out, WriterOptions::default())
    }

    /// A writer with the given options.
    pub fn with_options(out: W, opts: WriterOptions) -> Self {
        Self {
            out,
            opts,
            written: 0,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Writes one member: its header (and PAX header when needed), then
    /// exactly `header.size` bytes of `data` for regular files, then padding.
    /// `data` is not read for other kinds.
    pub fn append(&mut self, header: &Header, data: impl Read) -> Result<()> {
        self.append_using(header, data, &mut [0u8; 8 * 1024])
    }

    /// [`TarWriter::append`] that reads the content through `buf`, which the
    /// caller may keep for the next member (a buffer per member costs a
    /// fresh allocation, and its page faults, every time).
    pub fn append_using(
        &mut self,
        header: &Header,
        mut data: impl Read,
        buf: &mut [u8],
    ) -> Result<()> {
        self.append_header(header)?;
        if header.kind != EntryKind::File || header.size == 0 {
            return Ok(());
        }
        let mut left = header.size;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = match data.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("writing tar member content", e)),
            };
            self.write_raw(&buf[..n])?;
            left -= n as u64;
        }
        if left > 0 {
            return Err(Error::UnexpectedEof(format!(
                "content of {:?} ended after {} of {} bytes",
                String::from_utf8_lossy(&header.path),
                header.size - left,
                header.size
            )));
        }
        self.pad(header.size)
    }

    /// Writes a member without content (directories, links, devices, empty
    /// files). For a regular file with a size, the caller must follow with
    /// exactly that many bytes through [`TarWriter::write_raw`] and then
    /// [`TarWriter::pad`]; [`TarWriter::append`] does all of it.
    pub fn append_header(&mut self, header: &Header) -> Result<()> {
        self.append_header_with(header, ModeField::WithType)
    }

    /// [`TarWriter::append_header`] with a choice of mode field.
    pub fn append_header_with(&mut self, header: &Header, mode: ModeField) -> Result<()> {
        let (block, pax) = encode(header, self.opts, mode);
        if let Some((pax_name, records)) = pax {
            let mut ph = [0u8; BLOCK];
            put_str(&mut ph[0..100], &pax_name);
            put_octal(&mut ph[100..108], 0, 7);
            put_octal(&mut ph[108..116], 0, 7);
            put_octal(&mut ph[116..124], 0, 7);
            put_octal(&mut ph[124..136], records.len() as u64, 11);
            put_octal(&mut ph[136..148], 0, 11);
            ph[156] = b'x';
            ph[257..263].copy_from_slice(b"ustar\0");
            ph[263..265].copy_from_slice(b"00");
            checksum(&mut ph);
            self.write_raw(&ph)?;
            self.write_raw(&records)?;
            self.pad(records.len() as u64)?;
        }
        self.write_raw(&block)
    }

    /// Writes bytes as they are (content, or crafted blocks in tests).
    pub fn write_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|e| Error::io("writing tar stream", e))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Writes the zero padding after `len` bytes of content.
    pub fn pad(&mut self, len: u64) -> Result<()> {
        let rem = (len % BLOCK as u64) as usize;
        if rem != 0 {
            self.write_raw(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    /// Writes the two zero blocks that end an archive, flushes, and returns
    /// the inner writer.
    pub fn finish(mut self) -> Result<W> {
        self.write_raw(&[0u8; 2 * BLOCK])?;
        self.out
            .flush()
            .map_err(|e| Error::io("flushing tar stream", e))?;
        Ok(self.out)
    }
}

/// The ustar block of a member and, when needed, the PAX header's name and
/// records.
type Encoded = ([u8; BLOCK], Option<(Vec<u8>, Vec<u8>)>);

fn encode(h: &Header, opts: WriterOptions, mode: ModeField) -> Encoded {
    let mut b = [0u8; BLOCK];
    let mut pax: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let name = member_name(h);

    let (type_bits, flag, link): (u32, u8, &[u8]) = match &h.kind {
        EntryKind::File => (0o100000, b'0', b""),
        EntryKind::HardLink { target } => (0o100000, b'1', target),
        EntryKind::Symlink { target } => (0o120000, b'2', target),
        EntryKind::CharDevice { .. } => (0o020000, b'3', b""),
        EntryKind::BlockDevice { .. } => (0o060000, b'4', b""),
        EntryKind::Directory => (0o040000, b'5', b""),
        EntryKind::Fifo => (0o010000, b'6', b""),
        EntryKind::Socket => (0o140000, b'0', b""),
    };
    let type_bits = if mode == ModeField::WithType {
        type_bits
    } else {
        0
    };
    put_octal(
        &mut b[100..108],
        u64::from(type_bits | (h.mode & 0o7777)),
        7,
    );
    put_id(&mut b[108..116], h.uid, b"uid", &mut pax);
    put_id(&mut b[116..124], h.gid, b"gid", &mut pax);
    let size = if h.kind == EntryKind::File { h.size } else { 0 };
    if size > 0o77777777777 {
        put_octal(&mut b[124..136], 0, 11);
        pax.push((b"size".to_vec(), size.to_string().into_bytes()));
    } else {
        put_octal(&mut b[124..136], size, 11);
    }
    put_time(&mut b[136..148], h.mtime, b"mtime", opts, &mut pax);
    if let (Some(atime), TimePrecision::Nanoseconds) = (h.atime, opts.time_precision) {
        pax.push((b"atime".to_vec(), format_time(atime)));
    }
    b[156] = flag;
    if link.len() > 100 || !link.is_ascii() {
        put_str(&mut b[157..257], &to_ascii(link));
        pax.push((b"linkpath".to_vec(), link.to_vec()));
    } else {
        put_str(&mut b[157..257], link);
    }
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    put_name(&mut b[265..297], h.uname.as_deref(), b"uname", &mut pax);
    put_name(&mut b[297..329], h.gname.as_deref(), b"gname", &mut pax);
    let (major, minor) = match h.kind {
        EntryKind::CharDevice { major, minor } | EntryKind::BlockDevice { major, minor } => {
            (major, minor)
        }
        _ => (0, 0),
    };
    put_number(&mut b[329..337], u64::from(major), 7);
    put_number(&mut b[337..345], u64::from(minor), 7);
    for x in &h.xattrs {
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(&x.name);
        pax.push((key, x.value.clone()));
    }
    // A long name goes into `prefix` + `name` only when the member needs no
    // PAX header anyway; once there is one, it carries the path (Go's rule).
    if name.len() <= 100 && name.is_ascii() {
        put_str(&mut b[0..100], &name);
    } else {
        match split_ustar_path(&name) {
            Some((prefix, base)) if pax.is_empty() => {
                put_str(&mut b[345..500], prefix);
                put_str(&mut b[0..100], base);
            }
            _ => {
                put_str(&mut b[0..100], &to_ascii(&name));
                pax.push((b"path".to_vec(), name.clone()));
            }
        }
    }
    checksum(&mut b);
    if pax.is_empty() {
        return (b, None);
    }
    pax.sort_by(|a, b| a.0.cmp(&b.0));
    let mut records = Vec::new();
    for (k, v) in &pax {
        records.extend_from_slice(&pax_record(k, v));
    }
    (b, Some((pax_header_name(&name), records)))
}

fn member_name(h: &Header) -> Vec<u8> {
    if !h.raw_path.is_empty() && h.raw_path != h.path {
        return h.raw_path.clone();
    }
    let mut name = h.path.clone();
    if h.kind == EntryKind::Directory && !name.ends_with(b"/") {
        name.push(b'/');
    }
    name
}

/// Splits a long ASCII name into ustar `prefix` (≤155) and `name` (≤100)
/// at a `/`; `None` when it fits `name` alone or cannot be split.
fn split_ustar_path(name: &[u8]) -> Option<(&[u8], &[u8])> {
    if name.len() <= 100 || !name.is_ascii() {
        return None;
    }
    // A trailing '/' (directory) stays with the last component.
    let mut limit = name.len().min(156);
    if limit == name.len() && name[limit - 1] == b'/' {
        limit -= 1;
    }
    let i = name[..limit].iter().rposition(|&c| c == b'/')?;
    let base_len = name.len() - i - 1;
    if i == 0 || base_len == 0 || base_len > 100 || i > 155 {
        return None;
    }
    Some((&name[..i], &name[i + 1..]))
}

/// `DIR/PaxHeaders.0/BASE`, ASCII only, cut to 100 bytes.
fn pax_header_name(name: &[u8]) -> Vec<u8> {
    let (dir, base) = match name.iter().rposition(|&c| c == b'/') {
        Some(i) => (&name[..i], &name[i + 1..]),
        None => (&b""[..], name),
    };
    let mut out = Vec::new();
    let dir = dir.strip_suffix(b"/").unwrap_or(dir);
    if !dir.is_empty() {
        out.extend_from_slice(dir);
        out.push(b'/');
    }
    out.extend_from_slice(b"PaxHeaders.0");
    if !base.is_empty() {
        out.push(b'/');
        out.extend_from_slice(base);
    }
    out.retain(|c| c.is_ascii() && *c != 0);
    out.truncate(100);
    out
}

/// One `LEN KEY=VALUE\n` record; LEN counts itself.
fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut r = len.to_string().into_bytes();
    r.push(b' ');
    r.extend_from_slice(key);
    r.push(b'=');
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// What the ustar field shows of a string that went into PAX: its ASCII
/// bytes (other characters dropped), as Go writes it; the caller truncates.
fn to_ascii(s: &[u8]) -> Vec<u8> {
    s.iter().copied().filter(|&c| c != 0 && c < 0x80).collect()
}

fn put_str(field: &mut [u8], s: &[u8]) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s[..n]);
}

/// `digits` octal digits followed by a NUL.
fn put_octal(field: &mut [u8], v: u64, digits: usize) {
    let s = format!("{v:0digits$o}");
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
}

/// Octal when it fits, else GNU base-256 (no PAX key exists for devices).
fn put_number(field: &mut [u8], v: u64, digits: usize) {
    if v < 1u64 << (3 * digits) {
        put_octal(field, v, digits);
    } else {
        field.fill(0);
        field[0] = 0x80;
        let bytes = v.to_be_bytes();
        let n = field.len();
        field[n - 8..].copy_from_slice(&bytes);
        field[0] |= 0x80;
    }
}

fn put_id(field: &mut [u8], id: u32, key: &[u8], pax: &mut Vec<(Vec<u8>, Vec<u8>)>) {
    if u64::from(id) > 0o7777777 {
        put_octal(field, 0, 7);
        pax.push((key.to_vec(), id.to_string().into_bytes()));
    } else {
        put_octal(field, u64::from(id), 7);
    }
}

fn put_name(field: &mut [u8], name: Option<&[u8]>, key: &[u8], pax: &mut Vec<(Vec<u8>, Vec<u8>)>) {
    let Some(name) = name else { return };
    if name.len() > field.len() || !name.is_ascii() {
        put_str(field, &to_ascii(name));
        pax.push((key.to_vec(), name.to_vec()));
    } else {
        put_str(field, name);
    }
}

fn put_time(
    field: &mut [u8],
    t: Timestamp,
    key: &[u8],
    opts: WriterOptions,
    pax: &mut Vec<(Vec<u8>, Vec<u8>)>,
) {
    let fits = t.sec >= 0 && t.sec <= 0o77777777777;
    let subsec = opts.time_precision == TimePrecision::Nanoseconds && t.nsec != 0;
    put_octal(field, if fits { t.sec as u64 } else { 0 }, 11);
    if !fits {
        pax.push((key.to_vec(), t.sec.to_string().into_bytes()));
    } else if subsec {
        pax.push((key.to_vec(), format_time(t)));
    }
}

fn format_time(t: Timestamp) -> Vec<u8> {
    if t.nsec == 0 {
        return t.sec.to_string().into_bytes();
    }
    // Negative times count the fraction towards zero in PAX: -1.5 is
    // 1.5 seconds before the epoch, i.e. sec = -2, nsec = 5e8.
    let (sign, whole, frac) = if t.sec < 0 {
        ("-", (-(t.sec + 1)) as u64, 1_000_000_000 - t.nsec)
    } else {
        ("", t.sec as u64, t.nsec)
    };
    let frac = format!("{frac:09}");
    format!("{sign}{whole}.{}", frac.trim_end_matches('0')).into_bytes()
}

/// Unsigned sum of the header with the checksum field as spaces, written as
/// six octal digits, NUL, space.
fn checksum(b: &mut [u8; BLOCK]) {
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|&c| u32::from(c)).sum();
    let s = format!("{sum:06o}");
    b[148..154].copy_from_slice(s.as_bytes());
    b[154] = 0;
    b[155] = b' ';
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        for (k, v, want) in [
            (&b"path"[..], &b"a"[..], &b"9 path=a\n"[..]),
            (b"uid", b"3000000", b"15 uid=3000000\n"),
            (
                b"x",
                &[b'y'; 94][..],
                &[&b"101 x="[..], &[b'y'; 94][..], b"\n"].concat()[..],
            ),
        ] {
            assert_eq!(pax_record(k, v), want);
        }
    }

    #[test]
    fn split_ustar_paths() {
        let d60 = "d".repeat(60);
        let dir3 = format!("{d60}/{d60}/{d60}/");
        let (p, n) = split_ustar_path(dir3.as_bytes()).expect("splits");
        assert_eq!(p, format!("{d60}/{d60}").as_bytes());
        assert_eq!(n, format!("{d60}/").as_bytes());
        assert!(split_ustar_path("n".repeat(120).as_bytes()).is_none());
        assert!(split_ustar_path(b"short/name").is_none());
        let long_base = format!("a/{}", "b".repeat(101));
        assert!(split_ustar_path(long_base.as_bytes()).is_none());
    }

    #[test]
    fn pax_header_names() {
        for (name, want) in [
            ("etc/hl", "etc/PaxHeaders.0/hl"),
            ("longlink", "PaxHeaders.0/longlink"),
            ("a/b/", "a/b/PaxHeaders.0"),
        ] {
            assert_eq!(pax_header_name(name.as_bytes()), want.as_bytes());
        }
        assert_eq!(pax_header_name("n".repeat(120).as_bytes()).len(), 100);
    }

    #[test]
    fn times_format_like_pax() {
        for (sec, nsec, want) in [
            (5, 0, "5"),
            (5, 500_000_000, "5.5"),
            (1, 123_456_789, "1.123456789"),
            (-2, 500_000_000, "-1.5"),
        ] {
            assert_eq!(format_time(Timestamp { sec, nsec }), want.as_bytes());
        }
    }

    #[test]
    fn long_names_go_to_pax_once_a_pax_header_is_needed() {
        let d60 = "d".repeat(60);
        let name = format!("{d60}/{d60}/{d60}/f");
        let mut h = Header::new(name.clone(), EntryKind::File);
        let (b, pax) = encode(&h, WriterOptions::default(), ModeField::WithType);
        assert!(pax.is_none(), "splits into prefix and name");
        assert_eq!(&b[0..62], format!("{d60}/f").as_bytes());
        h.xattrs.push(crate::entry::Xattr {
            name: b"user.a".to_vec(),
            value: b"b".to_vec(),
        });
        let (b, pax) = encode(&h, WriterOptions::default(), ModeField::WithType);
        let (_, records) = pax.expect("pax header");
        assert!(records.ends_with(format!("194 path={name}\n").as_bytes()));
        assert_eq!(&b[0..100], &name.as_bytes()[..100]);
        assert_eq!(b[345], 0, "no prefix");
    }

    #[test]
    fn non_ascii_link_keeps_ascii_in_the_field() {
        let h = Header::new(
            "l",
            EntryKind::Symlink {
                target: "F\u{151}tan\u{fa}.pem".as_bytes().to_vec(),
            },
        );
        let (b, pax) = encode(&h, WriterOptions::default(), ModeField::WithType);
        assert!(pax.is_some());
        assert_eq!(&b[157..166], b"Ftan.pem\0");
    }

    #[test]
    fn header_fields_match_reference_layout() {
        let mut h = Header::new("etc/group", EntryKind::File);
        h.size = 2;
        h.mtime = Timestamp {
            sec: 1_577_836_800,
            nsec: 123_456_789,
        };
        h.uname = Some(b"root".to_vec());
        h.gname = Some(b"root".to_vec());
        let (b, pax) = encode(&h, WriterOptions::default(), ModeField::WithType);
        assert!(pax.is_none());
        assert_eq!(&b[100..108], b"0100644\0");
        assert_eq!(&b[124..136], b"00000000002\0");
        assert_eq!(&b[136..148], b"13602760400\0");
        assert_eq!(&b[148..156], b"012675\0 ");
        assert_eq!(&b[257..265], b"ustar\x0000");
        assert_eq!(&b[329..345], b"0000000\x000000000\0");
    }
}
