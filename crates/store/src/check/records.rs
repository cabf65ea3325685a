//! Reading record files that may be damaged: every record that still
//! parses is kept, in order, and what could not be read is named.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// What a possibly damaged JSON array of records gave.
#[derive(Debug)]
pub struct Salvage<T> {
    /// Records that parsed, in file order.
    pub records: Vec<T>,
    /// Why the file as a whole is damaged (None: it parsed cleanly).
    pub damage: Option<String>,
}

/// Parses a JSON array of records, element by element: a record that does
/// not parse is skipped, and text that is not an array (a truncated or
/// overwritten file) ends the salvage there. An empty file is an empty
/// array, as both tools treat it.
pub fn salvage<T: DeserializeOwned>(bytes: &[u8]) -> Salvage<T> {
    let mut out = Salvage {
        records: Vec::new(),
        damage: None,
    };
    let mut problems = Vec::new();
    let mut pos = skip_ws(bytes, 0);
    if pos == bytes.len() {
        return out;
    }
    if bytes[pos] != b'[' {
        out.damage = Some("not a JSON array".into());
        return out;
    }
    pos = skip_ws(bytes, pos + 1);
    if bytes.get(pos) == Some(&b']') {
        return tail(out, bytes, pos + 1, problems);
    }
    let mut index = 0usize;
    loop {
        let mut stream = serde_json::Deserializer::from_slice(&bytes[pos..]).into_iter::<Value>();
        match stream.next() {
            Some(Ok(v)) => {
                pos += stream.byte_offset();
                match serde_json::from_value::<T>(v) {
                    Ok(r) => out.records.push(r),
                    Err(e) => problems.push(format!("record {index} does not parse: {e}")),
                }
            }
            Some(Err(e)) => {
                problems.push(format!("unreadable after record {index}: {e}"));
                return ended(out, problems);
            }
            None => {
                problems.push(format!("truncated after record {index}"));
                return ended(out, problems);
            }
        }
        index += 1;
        pos = skip_ws(bytes, pos);
        match bytes.get(pos) {
            Some(b',') => pos = skip_ws(bytes, pos + 1),
            Some(b']') => return tail(out, bytes, pos + 1, problems),
            Some(_) => {
                problems.push(format!("unexpected text after record {index}"));
                return ended(out, problems);
            }
            None => {
                problems.push(format!("truncated after record {index}"));
                return ended(out, problems);
            }
        }
    }
}

/// The salvage so far, with what went wrong.
fn ended<T>(mut out: Salvage<T>, problems: Vec<String>) -> Salvage<T> {
    out.damage = Some(problems.join("; "));
    out
}

fn tail<T>(out: Salvage<T>, bytes: &[u8], pos: usize, mut problems: Vec<String>) -> Salvage<T> {
    if skip_ws(bytes, pos) != bytes.len() {
        problems.push("text after the end of the array".into());
    }
    if problems.is_empty() {
        return out;
    }
    ended(out, problems)
}

fn skip_ws(b: &[u8], mut pos: usize) -> usize {
    while pos < b.len() && b[pos].is_ascii_whitespace() {
        pos += 1;
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::Layer;

    #[test]
    fn salvage_keeps_what_parses() {
        let ok = br#"[{"id":"a","created":"t"},{"id":"b","created":"t"}]"#;
        let s = salvage::<Layer>(ok);
        assert!(s.damage.is_none());
        assert_eq!(s.records.len(), 2);

        let cases: [(&[u8], usize); 6] = [
            (br#"[{"id":"a","created":"t"},{"id":"b","cre"#, 1),
            (br#"[{"id":"a","created":"t"},{"names":"x"},{"id":"c"}]"#, 2),
            (br#"[{"id":"a"}]garbage"#, 1),
            (b"\0\0\0\0", 0),
            (br#"[{"id":"a"},"#, 1),
            (br#"{"id":"a"}"#, 0),
        ];
        for (bytes, kept) in cases {
            let s = salvage::<Layer>(bytes);
            assert!(s.damage.is_some(), "{:?}", String::from_utf8_lossy(bytes));
            assert_eq!(
                s.records.len(),
                kept,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        for empty in [&b""[..], b"  \n", b"[]", b"[ ]\n"] {
            let s = salvage::<Layer>(empty);
            assert!(s.damage.is_none() && s.records.is_empty());
        }
    }
}
