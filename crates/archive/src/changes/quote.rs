//! Quoting of paths as Go's `%q` (`strconv.Quote`) does, which is how the
//! `changes` command prints them.

use std::fmt::Write;

/// Quotes `bytes` as Go's `strconv.Quote`: printable characters as they
/// are, `"` and `\` escaped, `\a \b \f \n \r \t \v`, other control bytes
/// and bytes that are not UTF-8 as `\xNN`, other unprintable characters as
/// `\uNNNN` or `\UNNNNNNNN`.
pub fn go_quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_char(&mut out, c);
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('"');
    out
}

fn push_char(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        c if (c as u32) < 0x20 || c == '\x7f' => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if is_print(c) => out.push(c),
        c if (c as u32) < 0x10000 => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\U{:08x}", c as u32);
        }
    }
}

/// Approximates Go's `unicode.IsPrint`: letters, marks, numbers,
/// punctuation, symbols and the ASCII space; not controls, other spaces,
/// format characters, private use or non-characters.
fn is_print(c: char) -> bool {
    let u = c as u32;
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let format = matches!(u,
        0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x180e | 0x200b..=0x200f
        | 0x202a..=0x202e | 0x2060..=0x2064 | 0x2066..=0x206f | 0xfeff | 0xfff9..=0xfffb);
    let private = matches!(u, 0xe000..=0xf8ff | 0xf0000..=0x10ffff);
    let nonchar = (u & 0xfffe) == 0xfffe || (0xfdd0..=0xfdef).contains(&u);
    !(format || private || nonchar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        for (input, want) in [
            (&b"/etc"[..], r#""/etc""#),
            (b"/a b", r#""/a b""#),
            (b"/q\"\\", r#""/q\"\\""#),
            (b"/t\tn\n", r#""/t\tn\n""#),
            (b"/\x01\x7f", r#""/\x01\x7f""#),
            (b"/\xff\xfe", r#""/\xff\xfe""#),
            ("/é€".as_bytes(), "\"/é€\""),
            ("/\u{a0}\u{200b}".as_bytes(), r#""/\u00a0\u200b""#),
            ("/\u{f0000}".as_bytes(), r#""/\U000f0000""#),
        ] {
            assert_eq!(go_quote(input), want, "{input:?}");
        }
    }
}
