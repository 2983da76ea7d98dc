//! Every stable error code the service uses is documented: the domain's in
//! docs/lifecycle.md (generated from the core), the service's in
//! docs/errors.md. A code added to the code and not to the docs fails here.

use std::collections::BTreeSet;
use std::path::Path;

fn codes_in(dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            codes_in(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("readable source");
            for (i, _) in text.match_indices("\"ORD-") {
                let code: String = text[i + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                    .collect();
                // A complete code: ORD-<3 digits>-<NAME>.
                let parts: Vec<&str> = code.splitn(3, '-').collect();
                if parts.len() == 3 && parts[1].len() == 3 && !parts[2].is_empty() {
                    out.insert(code);
                }
            }
        }
    }
}

#[test]
fn every_error_code_in_the_code_is_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut used = BTreeSet::new();
    codes_in(&root.join("src"), &mut used);
    codes_in(&root.join("core/src"), &mut used);
    assert!(used.len() > 30, "the scan found the codes: {used:?}");
    let docs = std::fs::read_to_string(root.join("docs/errors.md")).expect("docs/errors.md")
        + &std::fs::read_to_string(root.join("docs/lifecycle.md")).expect("docs/lifecycle.md");
    let missing: Vec<&String> = used
        .iter()
        .filter(|c| !docs.contains(&format!("`{c}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "codes used but not documented: {missing:?}"
    );
}
