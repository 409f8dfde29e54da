//! Query parameters, and list filtering by label selector and field selector.

use std::collections::BTreeMap;

use serde_json::Value;

use super::status::{ApiError, ApiResult};

/// Decoded query parameters (the last value of each).
#[derive(Debug, Clone, Default)]
pub struct Query(BTreeMap<String, String>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        let mut map = BTreeMap::new();
        for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            map.insert(percent_decode(k), percent_decode(v));
        }
        Query(map)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn watch(&self) -> bool {
        matches!(self.get("watch"), Some("true") | Some("1"))
    }

    pub fn dry_run(&self) -> bool {
        self.get("dryRun") == Some("All")
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Debug)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// Splits at commas outside parentheses.
fn terms(selector: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    for c in selector.chars() {
        match c {
            '(' => {
                depth += 1;
                current.push(c)
            }
            ')' => {
                depth -= 1;
                current.push(c)
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    out.push(current);
    out.into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

fn parse_label_selector(selector: &str) -> ApiResult<Vec<Requirement>> {
    let bad = || {
        ApiError::bad_request(format!(
            "unable to parse requirement: invalid label selector {selector:?}"
        ))
    };
    terms(selector)
        .into_iter()
        .map(|t| {
            let set = |rest: &str| -> ApiResult<Vec<String>> {
                let inner = rest
                    .trim()
                    .strip_prefix('(')
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(bad)?;
                Ok(inner
                    .split(',')
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
                    .collect())
            };
            if let Some(key) = t.strip_prefix('!') {
                return Ok(Requirement::NotExists(key.trim().into()));
            }
            if let Some((k, v)) = t.split_once("!=") {
                return Ok(Requirement::NotEquals(k.trim().into(), v.trim().into()));
            }
            if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                return Ok(Requirement::Equals(k.trim().into(), v.trim().into()));
            }
            if let Some((k, rest)) = t.split_once(" notin ") {
                return Ok(Requirement::NotIn(k.trim().into(), set(rest)?));
            }
            if let Some((k, rest)) = t.split_once(" in ") {
                return Ok(Requirement::In(k.trim().into(), set(rest)?));
            }
            if t.contains(' ') || t.contains('(') {
                return Err(bad());
            }
            Ok(Requirement::Exists(t))
        })
        .collect()
}

fn label_matches(reqs: &[Requirement], labels: &Value) -> bool {
    reqs.iter().all(|r| {
        let value = |k: &str| labels[k].as_str().map(str::to_string);
        match r {
            Requirement::Equals(k, v) => value(k).as_deref() == Some(v.as_str()),
            Requirement::NotEquals(k, v) => value(k).as_deref() != Some(v.as_str()),
            Requirement::In(k, vs) => value(k).is_some_and(|x| vs.contains(&x)),
            Requirement::NotIn(k, vs) => !value(k).is_some_and(|x| vs.contains(&x)),
            Requirement::Exists(k) => value(k).is_some(),
            Requirement::NotExists(k) => value(k).is_none(),
        }
    })
}

/// A field of an object by its dotted path, as a field selector compares it.
fn field_value(obj: &Value, path: &str) -> String {
    let mut v = obj;
    for part in path.split('.') {
        v = &v[part];
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn field_matches(selector: &str, obj: &Value) -> ApiResult<bool> {
    for term in terms(selector) {
        let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
            (f, v, false)
        } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            (f, v, true)
        } else {
            return Err(ApiError::bad_request(format!(
                "invalid selector: {term:?}; can't understand it"
            )));
        };
        if (field_value(obj, field.trim()) == value.trim()) != equal {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Keeps the items matching the query's labelSelector and fieldSelector.
pub fn filter(items: Vec<Value>, query: &Query) -> ApiResult<Vec<Value>> {
    let labels = match query.get("labelSelector").filter(|s| !s.is_empty()) {
        Some(s) => Some(parse_label_selector(s)?),
        None => None,
    };
    let fields = query.get("fieldSelector").filter(|s| !s.is_empty());
    let mut out = Vec::new();
    for item in items {
        if let Some(reqs) = &labels
            && !label_matches(reqs, &item["metadata"]["labels"])
        {
            continue;
        }
        if let Some(f) = fields
            && !field_matches(f, &item)?
        {
            continue;
        }
        out.push(item);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_and_field_selectors() {
        let items = vec![
            json!({"metadata": {"name": "a", "labels": {"component": "etcd", "tier": "control-plane"}}, "spec": {"nodeName": "n1"}}),
            json!({"metadata": {"name": "b", "labels": {"component": "kube-apiserver", "tier": "control-plane"}}, "spec": {"nodeName": "n2"}}),
        ];
        let q = Query::parse(Some(
            "labelSelector=component%3Detcd%2Ctier%3Dcontrol-plane",
        ));
        assert_eq!(filter(items.clone(), &q).unwrap().len(), 1);
        let q = Query::parse(Some(
            "labelSelector=component+in+(etcd,kube-apiserver),!missing",
        ));
        assert_eq!(filter(items.clone(), &q).unwrap().len(), 2);
        let q = Query::parse(Some("fieldSelector=spec.nodeName%3Dn2"));
        let out = filter(items.clone(), &q).unwrap();
        assert_eq!(out[0]["metadata"]["name"], "b");
        let q = Query::parse(Some("fieldSelector=metadata.name!%3Da"));
        assert_eq!(filter(items, &q).unwrap().len(), 1);
    }
}
