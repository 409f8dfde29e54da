//! YAML in and out through serde-saphyr, in kubeadm's layout: keys sorted, as sigs.k8s.io/yaml writes them.

use serde::Serialize;
use serde::de::DeserializeOwned;

fn options() -> serde_saphyr::SerializerOptions {
    // Multi-line strings become literal blocks; long single-line strings (base64 data) stay plain
    // scalars instead of folded blocks, as Go's YAML writer does.
    serde_saphyr::ser_options! {
        folded_wrap_chars: usize::MAX,
    }
}

/// Serialises any value with its mapping keys sorted (through `serde_json::Value`, whose maps are ordered).
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<String> {
    let sorted = serde_json::to_value(value)?;
    let text = serde_saphyr::to_string_with_options(&sorted, options())?;
    Ok(text)
}

/// Serialises several documents separated by `---`.
pub fn to_documents(values: &[serde_json::Value]) -> anyhow::Result<String> {
    let mut out = String::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&to_string(v)?);
    }
    Ok(out)
}

/// Parses every document of a multi-document YAML stream into JSON values (empty documents are skipped).
pub fn documents(text: &str) -> Result<Vec<serde_json::Value>, serde_saphyr::Error> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(text)?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// Parses one YAML document into a typed value.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, serde_saphyr::Error> {
    serde_saphyr::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_sorted_long_strings_plain_multiline_literal() {
        let long = "A".repeat(200);
        let v = json!({"b": 1, "a": {"long": long, "multi": "x\ny\n", "yes": "yes"}});
        let text = to_string(&v).unwrap();
        let a = text.find("a:").unwrap();
        let b = text.find("b:").unwrap();
        assert!(a < b, "{text}");
        assert!(text.contains(&format!("long: {long}\n")), "{text}");
        assert!(text.contains("multi: |"), "{text}");
        assert!(text.contains("\"yes\": \"yes\""), "{text}");
        let back: serde_json::Value = from_str(&text).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn multi_document_streams_skip_empty_documents() {
        let docs = documents("a: 1\n---\nb: 2\n---\n").unwrap();
        assert_eq!(docs, vec![json!({"a": 1}), json!({"b": 2})]);
    }
}
