//! The pure part of the drift pass: git's blob ids of rendered files, the spec digest
//! renderings are keyed by, and the classification of one service's files. No I/O.

use std::collections::{BTreeSet, HashMap, HashSet};

use app::fleet::{DriftClass, FileDrift};
use sha1::Digest as _;

/// git's blob id of `contents`: SHA-1 over `blob <len>\0<contents>`, what `git ls-tree` lists,
/// so a rendering compares with the repository without writing or reading a file.
pub fn blob_id(contents: &[u8]) -> String {
    let mut hasher = sha1::Sha1::new();
    hasher.update(format!("blob {}\0", contents.len()).as_bytes());
    hasher.update(contents);
    hex(&hasher.finalize())
}

/// SHA-256 of `contents`, hex.
pub fn sha256(contents: &[u8]) -> String {
    hex(&sha2::Sha256::digest(contents))
}

/// The digest of a stored spec: renderings of one spec are comparable, of another are not.
/// Keys are sorted first, so equal specs digest alike whatever order a backend stored them in;
/// the justification (why a change set was asked for) renders nothing and is left out.
pub fn spec_digest(spec: &serde_json::Value) -> String {
    fn canonical(value: &serde_json::Value, out: &mut String) {
        match value {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, key) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String(key.clone()).to_string());
                    out.push(':');
                    canonical(&map[key], out);
                }
                out.push('}');
            }
            serde_json::Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut spec = spec.clone();
    if let Some(map) = spec.as_object_mut() {
        map.remove("justification");
    }
    let mut text = String::new();
    canonical(&spec, &mut text);
    sha256(text.as_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Classifies a service's files. `rendered` and `repository` are `(path, blob id)` of
/// today's rendering and of the base branch; `older` maps `(path, blob id)` of renderings
/// recorded for the same spec to the version that made them; `adopted` holds `(path, blob id)`
/// of hand edits an admin adopted. Returns every file, path order.
pub fn classify(
    rendered: &[(String, String)],
    repository: &[(String, String)],
    older: &HashMap<(String, String), String>,
    adopted: &HashSet<(String, String)>,
) -> Vec<FileDrift> {
    let rendered: HashMap<&str, &str> =
        rendered.iter().map(|(p, b)| (p.as_str(), b.as_str())).collect();
    let repository: HashMap<&str, &str> =
        repository.iter().map(|(p, b)| (p.as_str(), b.as_str())).collect();
    let paths: BTreeSet<&str> = rendered.keys().chain(repository.keys()).copied().collect();
    paths
        .into_iter()
        .map(|path| {
            let key = |blob: &str| (path.to_owned(), blob.to_owned());
            let (class, rendered_by) = match (rendered.get(path), repository.get(path)) {
                (Some(ours), Some(theirs)) if ours == theirs => (DriftClass::Current, None),
                (_, Some(theirs)) if adopted.contains(&key(theirs)) => (DriftClass::Adopted, None),
                (Some(_), Some(theirs)) => match older.get(&key(theirs)) {
                    Some(version) => (DriftClass::GeneratorUpgrade, Some(version.clone())),
                    None => (DriftClass::HandEdit, None),
                },
                (Some(_), None) => (DriftClass::Missing, None),
                (None, _) => (DriftClass::Extra, None),
            };
            FileDrift { path: path.to_owned(), class, rendered_by }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(path: &str, blob: &str) -> (String, String) {
        (path.to_owned(), blob.to_owned())
    }

    #[test]
    fn blob_ids_are_gits() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(blob_id(b"hello\n"), "ce013625030ba8dba906f756967f9e9ca394464a");
        assert_eq!(blob_id(b""), "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
    }

    #[test]
    fn each_difference_gets_its_class() {
        let rendered = [pair("a", "1"), pair("b", "2"), pair("c", "3"), pair("d", "4")];
        let repository = [pair("a", "1"), pair("b", "old"), pair("c", "edited"), pair("e", "5")];
        let older = HashMap::from([(pair("b", "old"), "0.1.0+r1".to_owned())]);
        let classes: Vec<(String, DriftClass)> =
            classify(&rendered, &repository, &older, &HashSet::new())
                .into_iter()
                .map(|f| (f.path, f.class))
                .collect();
        assert_eq!(
            classes,
            [
                ("a".to_owned(), DriftClass::Current),
                ("b".to_owned(), DriftClass::GeneratorUpgrade),
                ("c".to_owned(), DriftClass::HandEdit),
                ("d".to_owned(), DriftClass::Missing),
                ("e".to_owned(), DriftClass::Extra),
            ]
        );
        let adopted = HashSet::from([pair("c", "edited")]);
        let files = classify(&rendered, &repository, &older, &adopted);
        assert_eq!(files[2].class, DriftClass::Adopted);
        assert_eq!(files[1].rendered_by.as_deref(), Some("0.1.0+r1"));
    }
}
