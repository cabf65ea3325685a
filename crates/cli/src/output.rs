//! Output formats shared by several commands, as the reference prints them.

use std::collections::HashMap;
use std::io::Write;

use strata_store::{Change, ChangeKind, Container, Image, Layer};

/// Go's `%q` quoting of a byte string (`strconv.Quote`).
pub fn go_quote(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                quote_str(s, &mut out);
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                quote_str(std::str::from_utf8(good).unwrap_or(""), &mut out);
                let n = e.error_len().unwrap_or(bad.len()).max(1);
                for b in &bad[..n] {
                    out.push_str(&format!("\\x{b:02x}"));
                }
                rest = &bad[n..];
            }
        }
    }
    out.push('"');
    out
}

fn quote_str(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() || c == '\u{feff}' => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
}

/// `Modify "/etc"` lines.
pub fn changes_text(changes: &[Change]) -> String {
    let mut s = String::new();
    for c in changes {
        let kind = match c.kind {
            ChangeKind::Modify => "Modify",
            ChangeKind::Add => "Add",
            ChangeKind::Delete => "Delete",
        };
        s.push_str(kind);
        s.push(' ');
        s.push_str(&go_quote(&c.path));
        s.push('\n');
    }
    s
}

/// `[{"Path":"/d","Kind":1},…]`.
pub fn changes_json(changes: &[Change]) -> String {
    let v: Vec<serde_json::Value> = changes
        .iter()
        .map(|c| {
            serde_json::json!({
                "Path": String::from_utf8_lossy(&c.path),
                "Kind": c.kind as u8,
            })
        })
        .collect();
    json(&v)
}

/// Compact JSON with Go's escaping.
pub fn json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    String::from_utf8(strata_store::record::to_json(v).unwrap_or_default()).unwrap_or_default()
}

/// The images and containers that start from each layer (by top layer
/// and by read-write layer), with their names, for `layers`.
#[derive(Debug, Default)]
pub struct Users<'a> {
    images: HashMap<&'a str, Vec<(&'a str, &'a [String])>>,
    containers: HashMap<&'a str, Vec<(&'a str, &'a [String])>>,
}

impl<'a> Users<'a> {
    /// Indexes `images` by top layer (and mapped copies of it) and
    /// `containers` by layer.
    pub fn new(images: &'a [Image], containers: &'a [Container]) -> Self {
        let mut u = Users::default();
        for i in images {
            let tops = std::iter::once(&i.top_layer).chain(&i.mapped_layers);
            for top in tops {
                u.images
                    .entry(top.as_str())
                    .or_default()
                    .push((i.id.as_str(), i.names.as_slice()));
            }
        }
        for c in containers {
            u.containers
                .entry(c.layer.as_str())
                .or_default()
                .push((c.id.as_str(), c.names.as_slice()));
        }
        u
    }

    /// `image: ID` and `container: ID` lines for a layer, each followed by
    /// its names as `name_line` formats them.
    fn lines(&self, layer: &str, name_line: impl Fn(&str, &str) -> String) -> Vec<String> {
        let mut v = Vec::new();
        for (kind, map) in [("image", &self.images), ("container", &self.containers)] {
            for (id, names) in map.get(layer).into_iter().flatten() {
                v.push(format!("{kind}: {id}"));
                v.extend(names.iter().map(|n| name_line(kind, n)));
            }
        }
        v
    }
}

/// `layers`: each layer's ID, names, and the images and containers on it.
pub fn layers_list(layers: &[Layer], users: &Users<'_>) -> String {
    let mut out = String::new();
    for l in layers {
        out.push_str(&format!("{}\n", l.id));
        for n in &l.names {
            out.push_str(&format!("\tname: {n}\n"));
        }
        for line in users.lines(&l.id, |_, n| format!("\tname: {n}")) {
            out.push_str(&format!("\t{line}\n"));
        }
    }
    out
}

/// `layers -t`: a tree rooted at `(base)`.
pub fn layers_tree(
    layers: &[Layer],
    mounts: &[strata_store::MountRecord],
    users: &Users<'_>,
) -> String {
    let label = |l: &Layer| -> Vec<String> {
        let mut v = vec![l.id.clone()];
        v.extend(l.names.iter().map(|n| format!("name: {n}")));
        if let Some(m) = mounts.iter().find(|m| m.id == l.id && m.count > 0) {
            v.push(format!("mount: {}", m.path));
        }
        v.extend(users.lines(&l.id, |kind, n| format!("{kind} name: {n}")));
        v
    };
    fn walk(
        parent: &str,
        layers: &[Layer],
        label: &dyn Fn(&Layer) -> Vec<String>,
        prefix: &str,
        out: &mut String,
    ) {
        let kids: Vec<&Layer> = layers
            .iter()
            .filter(|l| {
                l.parent == parent
                    || (parent.is_empty() && !layers.iter().any(|p| p.id == l.parent))
            })
            .collect();
        for (i, k) in kids.iter().enumerate() {
            let last = i + 1 == kids.len();
            let (branch, cont) = if last {
                ("└─", "  ")
            } else {
                ("├─", "│ ")
            };
            let lines = label(k);
            out.push_str(&format!("{prefix}{branch}{}\n", lines[0]));
            for l in &lines[1..] {
                out.push_str(&format!("{prefix}{cont}{l}\n"));
            }
            walk(&k.id, layers, label, &format!("{prefix}{cont}"), out);
        }
    }
    let mut out = String::from("(base)\n");
    walk("", layers, &label, "", &mut out);
    out
}

/// `layer`: `ID:`, maps, `Parent:`, `Name:` lines.
pub fn layer_text(l: &Layer) -> String {
    let mut s = format!("ID: {}\n", l.id);
    for m in &l.uid_map {
        s.push_str(&format!(
            "UID mapping: (container={}, host={}, size={})\n",
            m.container_id, m.host_id, m.size
        ));
    }
    for m in &l.gid_map {
        s.push_str(&format!(
            "GID mapping: (container={}, host={}, size={})\n",
            m.container_id, m.host_id, m.size
        ));
    }
    if !l.parent.is_empty() {
        s.push_str(&format!("Parent: {}\n", l.parent));
    }
    for n in &l.names {
        s.push_str(&format!("Name: {n}\n"));
    }
    s
}

/// Go's `%v` of an int slice: `[0 1 2]`.
pub fn go_list(v: &[u32]) -> String {
    let items: Vec<String> = v.iter().map(u32::to_string).collect();
    format!("[{}]", items.join(" "))
}

/// Prints `v` as one line of compact JSON.
pub fn print_json<T: serde::Serialize + ?Sized>(v: &T) -> anyhow::Result<()> {
    print(&format!("{}\n", json(v)))
}

/// What a create command prints: the new record as JSON, or its ID on a
/// line and each name after a tab, each followed by `name_end` (a newline
/// for layers and images; nothing for containers, as the reference prints
/// them).
pub fn print_created<T: serde::Serialize>(
    json: bool,
    record: &T,
    id: &str,
    names: &[String],
    name_end: &str,
) -> anyhow::Result<()> {
    if json {
        return print_json(record);
    }
    let mut out = format!(
        "{id}
"
    );
    for n in names {
        out.push_str(&format!("\t{n}{name_end}"));
    }
    print(&out)
}

/// Prints each item on a line of its own.
pub fn print_lines<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> anyhow::Result<()> {
    let mut out = String::new();
    for i in items {
        out.push_str(&format!("{i}\n"));
    }
    print(&out)
}

/// Writes to stdout, treating a closed pipe as the end.
pub fn print(s: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_like_go() {
        let cases: &[(&[u8], &str)] = &[
            (b"/etc/motd", r#""/etc/motd""#),
            (b"/a \"b\"\\", r#""/a \"b\"\\""#),
            (b"/tab\there\n", r#""/tab\there\n""#),
            (b"/\x01\x7f", r#""/\x01\x7f""#),
            (b"/\xff\xfeok", r#""/\xff\xfeok""#),
            ("/ünï".as_bytes(), "\"/ünï\""),
        ];
        for (input, want) in cases {
            assert_eq!(go_quote(input), *want);
        }
    }

    #[test]
    fn tree_like_reference() {
        let mk = |id: &str, names: &[&str], parent: &str| Layer {
            id: id.into(),
            names: names.iter().map(|s| s.to_string()).collect(),
            parent: parent.into(),
            ..Default::default()
        };
        let layers = vec![
            mk("a", &[], ""),
            mk("b", &["base", "base2"], ""),
            mk("c", &["mapped"], ""),
            mk("d", &["kid"], "b"),
        ];
        let mounts = vec![strata_store::MountRecord {
            id: "d".into(),
            path: "/m/d".into(),
            count: 2,
            ..Default::default()
        }];
        let want = "(base)\n├─a\n├─b\n│ name: base\n│ name: base2\n│ └─d\n│   name: kid\n│   mount: /m/d\n└─c\n  name: mapped\n";
        assert_eq!(layers_tree(&layers, &mounts, &Users::default()), want);
    }
}
