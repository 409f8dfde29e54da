//! `metav1.LabelSelector` matching (matchLabels and matchExpressions), as workload controllers,
//! services and the API server's workload validation apply it.

use serde_json::Value;

/// Whether `labels` satisfies a LabelSelector. A missing (null) selector selects nothing and an
/// empty one everything, as metav1.LabelSelectorAsSelector makes them; a selector with an
/// unknown operator selects nothing.
pub fn selector_matches(selector: &Value, labels: &Value) -> bool {
    if !selector.is_object() {
        return false;
    }
    let value = |key: &str| labels[key].as_str();
    let match_labels = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| value(k) == v.as_str());
    match_labels
        && selector["matchExpressions"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|req| {
                let key = req["key"].as_str().unwrap_or_default();
                let values: Vec<&str> = req["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                match req["operator"].as_str() {
                    Some("In") => value(key).is_some_and(|v| values.contains(&v)),
                    Some("NotIn") => !value(key).is_some_and(|v| values.contains(&v)),
                    Some("Exists") => value(key).is_some(),
                    Some("DoesNotExist") => value(key).is_none(),
                    _ => false,
                }
            })
}

/// Whether a LabelSelector has no requirement at all (it would select every object).
pub fn selector_is_empty(selector: &Value) -> bool {
    selector["matchLabels"]
        .as_object()
        .is_none_or(|m| m.is_empty())
        && selector["matchExpressions"]
            .as_array()
            .is_none_or(|m| m.is_empty())
}

/// Whether every `key: value` of a map selector (a Service's spec.selector) is in `labels`.
pub fn map_matches(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels[k.as_str()].as_str() == v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn match_labels_and_expressions_combine() {
        let selector = json!({"matchLabels": {"app": "web"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["front", "edge"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ]});
        assert!(selector_matches(
            &selector,
            &json!({"app": "web", "tier": "edge"})
        ));
        assert!(!selector_matches(
            &selector,
            &json!({"app": "web", "tier": "back"})
        ));
        assert!(!selector_matches(
            &selector,
            &json!({"app": "web", "tier": "edge", "canary": "1"})
        ));
        assert!(!selector_matches(&selector, &json!({"tier": "edge"})));
        let not_in =
            json!({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]});
        assert!(selector_matches(&not_in, &json!({})));
        assert!(!selector_matches(&not_in, &json!({"env": "prod"})));
        let bad = json!({"matchExpressions": [{"key": "env", "operator": "Gt", "values": ["1"]}]});
        assert!(!selector_matches(&bad, &json!({"env": "2"})));
    }

    #[test]
    fn null_selects_nothing_and_empty_everything() {
        assert!(!selector_matches(&Value::Null, &json!({"a": "b"})));
        assert!(selector_matches(&json!({}), &json!({"a": "b"})));
        assert!(selector_is_empty(&json!({"matchLabels": {}})));
        assert!(!selector_is_empty(&json!({"matchLabels": {"a": "b"}})));
        assert!(map_matches(
            &json!({"a": "b"}),
            &json!({"a": "b", "c": "d"})
        ));
        assert!(!map_matches(&json!({"a": "b"}), &json!({"a": "c"})));
    }
}
