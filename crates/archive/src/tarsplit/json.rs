//! Writing tar-split JSON lines exactly as Go's `encoding/json` does, so a
//! record we write is byte-identical to the one containers-storage writes
//! for the same stream (field order, `null` payloads, HTML-safe escapes).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Appends `s` as a JSON string the way Go 1.19's encoder writes it:
/// `\"`, `\\`, `\n`, `\r`, `\t`; other control bytes, `<`, `>`, `&`,
/// U+2028 and U+2029 as `\u00xx` / `\u20xx` (lower-case hex).
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{0}'..='\u{1f}' | '<' | '>' | '&' => {
                let b = c as u8;
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            '\u{2028}' => out.extend_from_slice(b"\\u2028"),
            '\u{2029}' => out.extend_from_slice(b"\\u2029"),
            _ => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// Appends a base64 JSON string.
pub fn push_b64(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    out.extend_from_slice(STANDARD.encode(bytes).as_bytes());
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_escapes() {
        let cases = [
            ("./e/<&>", r#""./e/\u003c\u0026\u003e""#),
            ("a\"b\\c", r#""a\"b\\c""#),
            (
                "t\tn\nr\r\u{8}\u{c}\u{1f}\u{7f}",
                r#""t\tn\nr\r\u0008\u000c\u001f\u{7f}""#,
            ),
            ("\u{2028}\u{2029}é", r#""\u2028\u2029é""#),
        ];
        for (input, want) in cases {
            let mut out = Vec::new();
            push_str(&mut out, input);
            let want = want.replace("\\u{7f}", "\u{7f}");
            assert_eq!(String::from_utf8(out).unwrap(), want, "{input:?}");
        }
    }
}
