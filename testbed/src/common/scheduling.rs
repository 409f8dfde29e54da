//! Whether a pod fits a node — `spec.unschedulable`, taints and tolerations, nodeSelector and
//! required node affinity (matchExpressions and the `metadata.name` matchFields DaemonSet pods
//! carry) — with the filter reasons of the scheduler's NodeUnschedulable, TaintToleration and
//! NodeAffinity plugins. Shared by the scheduler double and the DaemonSet controller.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

/// The taint a cordoned node stands for (NodeUnschedulable plugin).
pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

/// Toleration.ToleratesTaint: an empty key matches every key, an empty effect every effect;
/// `Exists` matches any value, `Equal` (or no operator) the same value.
pub fn tolerates(toleration: &Value, taint: &Value) -> bool {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let effect = text(&toleration["effect"]);
    if !effect.is_empty() && effect != text(&taint["effect"]) {
        return false;
    }
    let key = text(&toleration["key"]);
    if !key.is_empty() && key != text(&taint["key"]) {
        return false;
    }
    match toleration["operator"].as_str().unwrap_or_default() {
        "" | "Equal" => text(&toleration["value"]) == text(&taint["value"]),
        "Exists" => true,
        _ => false,
    }
}

/// The first of `taints` with one of `effects` that no toleration tolerates.
pub fn untolerated_taint<'a>(
    taints: &'a Value,
    tolerations: &Value,
    effects: &[&str],
) -> Option<&'a Value> {
    taints.as_array().into_iter().flatten().find(|taint| {
        effects.contains(&taint["effect"].as_str().unwrap_or_default())
            && !tolerations
                .as_array()
                .into_iter()
                .flatten()
                .any(|t| tolerates(t, taint))
    })
}

fn values(requirement: &Value) -> Vec<&str> {
    requirement["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// A NodeSelectorRequirement against a node's labels (In, NotIn, Exists, DoesNotExist, Gt, Lt).
fn label_requirement(requirement: &Value, labels: &Value) -> bool {
    let key = requirement["key"].as_str().unwrap_or_default();
    let value = labels[key].as_str();
    let wanted = values(requirement);
    let compare = |ordering: std::cmp::Ordering| {
        let (Some(v), [bound]) = (value, wanted.as_slice()) else {
            return false;
        };
        match (v.parse::<i64>(), bound.parse::<i64>()) {
            (Ok(v), Ok(bound)) => v.cmp(&bound) == ordering,
            _ => false,
        }
    };
    match requirement["operator"].as_str() {
        Some("In") => value.is_some_and(|v| wanted.contains(&v)),
        Some("NotIn") => !value.is_some_and(|v| wanted.contains(&v)),
        Some("Exists") => value.is_some(),
        Some("DoesNotExist") => value.is_none(),
        Some("Gt") => compare(std::cmp::Ordering::Greater),
        Some("Lt") => compare(std::cmp::Ordering::Less),
        _ => false,
    }
}

/// A matchFields requirement: only `metadata.name` with In/NotIn is supported, as upstream.
fn field_requirement(requirement: &Value, node: &Value) -> bool {
    if requirement["key"].as_str() != Some("metadata.name") {
        return false;
    }
    let name = node["metadata"]["name"].as_str().unwrap_or_default();
    match requirement["operator"].as_str() {
        Some("In") => values(requirement).contains(&name),
        Some("NotIn") => !values(requirement).contains(&name),
        _ => false,
    }
}

/// A NodeSelectorTerm: its expressions and fields ANDed; a term with neither matches nothing.
pub fn term_matches(term: &Value, node: &Value) -> bool {
    let expressions = term["matchExpressions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let fields = term["matchFields"].as_array().cloned().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    expressions
        .iter()
        .all(|r| label_requirement(r, &node["metadata"]["labels"]))
        && fields.iter().all(|r| field_requirement(r, node))
}

fn required_terms(spec: &Value) -> Option<&Vec<Value>> {
    let required =
        &spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
    if required.is_null() {
        return None;
    }
    Some(
        required["nodeSelectorTerms"]
            .as_array()
            .unwrap_or(const { &Vec::new() }),
    )
}

/// nodeSelector and required node affinity together (GetRequiredNodeAffinity(pod).Match(node)).
pub fn required_affinity_matches(spec: &Value, node: &Value) -> bool {
    let labels = &node["metadata"]["labels"];
    let selector_ok = spec["nodeSelector"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels[k.as_str()].as_str() == v.as_str());
    selector_ok
        && required_terms(spec).is_none_or(|terms| terms.iter().any(|t| term_matches(t, node)))
}

/// NodeAffinity's PreFilter: the node names a pod's required terms pin it to through
/// `metadata.name In` matchFields, when every term does (None: any node may do).
/// Err when the terms conflict (no name satisfies them).
pub fn affinity_node_names(spec: &Value) -> Result<Option<BTreeSet<String>>, Unfit> {
    let Some(terms) = required_terms(spec) else {
        return Ok(None);
    };
    let mut names: Option<BTreeSet<String>> = None;
    for term in terms {
        let mut term_names: Option<BTreeSet<String>> = None;
        for requirement in term["matchFields"].as_array().into_iter().flatten() {
            if requirement["key"] == "metadata.name" && requirement["operator"] == "In" {
                let set: BTreeSet<String> = values(requirement)
                    .into_iter()
                    .map(str::to_string)
                    .collect();
                term_names = Some(match term_names {
                    None => set,
                    Some(previous) => previous.intersection(&set).cloned().collect(),
                });
            }
        }
        let Some(term_names) = term_names else {
            return Ok(None);
        };
        names.get_or_insert_with(BTreeSet::new).extend(term_names);
    }
    match names {
        Some(n) if n.is_empty() => Err(Unfit::AffinityConflict),
        other => Ok(other),
    }
}

/// Why a node does not fit a pod, worded as the scheduler's filter plugins word it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unfit {
    Unschedulable,
    Taint {
        key: String,
        value: String,
    },
    Affinity,
    AffinityConflict,
    /// Not among the nodes a PreFilter (NodeAffinity's matchFields) allowed.
    NotInPreFilter,
}

impl fmt::Display for Unfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unfit::Unschedulable => write!(f, "node(s) were unschedulable"),
            Unfit::Taint { key, value } => {
                write!(f, "node(s) had untolerated taint {{{key}: {value}}}")
            }
            Unfit::Affinity => write!(f, "node(s) didn't match Pod's node affinity/selector"),
            Unfit::AffinityConflict => write!(f, "pod affinity terms conflict"),
            Unfit::NotInPreFilter => write!(f, "node(s) didn't satisfy plugin(s) [NodeAffinity]"),
        }
    }
}

/// The scheduler's filters in the default profile's order; the first failure is the node's reason.
pub fn filter(spec: &Value, node: &Value) -> Result<(), Unfit> {
    let tolerations = &spec["tolerations"];
    if node["spec"]["unschedulable"].as_bool() == Some(true) {
        let cordon = serde_json::json!({"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"});
        if !tolerations
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| tolerates(t, &cordon))
        {
            return Err(Unfit::Unschedulable);
        }
    }
    if let Some(taint) = untolerated_taint(
        &node["spec"]["taints"],
        tolerations,
        &["NoSchedule", "NoExecute"],
    ) {
        return Err(Unfit::Taint {
            key: taint["key"].as_str().unwrap_or_default().to_string(),
            value: taint["value"].as_str().unwrap_or_default().to_string(),
        });
    }
    if !required_affinity_matches(spec, node) {
        return Err(Unfit::Affinity);
    }
    Ok(())
}

/// The sum of the weights of the preferred node-affinity terms a node matches (scoring).
pub fn preferred_affinity_weight(spec: &Value, node: &Value) -> i64 {
    spec["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| term_matches(&p["preference"], node))
        .map(|p| p["weight"].as_i64().unwrap_or(0))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, labels: Value, taints: Value) -> Value {
        json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}})
    }

    #[test]
    fn toleration_matching_follows_the_api_rules() {
        let cp = json!({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"});
        assert!(tolerates(
            &json!({"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}),
            &cp
        ));
        assert!(tolerates(&json!({"operator": "Exists"}), &cp));
        assert!(tolerates(
            &json!({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}),
            &cp
        ));
        assert!(!tolerates(
            &json!({"key": "node-role.kubernetes.io/control-plane", "effect": "NoExecute", "operator": "Exists"}),
            &cp
        ));
        let valued = json!({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"});
        assert!(!tolerates(
            &json!({"key": "dedicated", "value": "db"}),
            &valued
        ));
        assert!(tolerates(
            &json!({"key": "dedicated", "operator": "Equal", "value": "gpu"}),
            &valued
        ));
    }

    #[test]
    fn filters_give_the_first_failing_plugins_reason() {
        let cp = node(
            "cp",
            json!({"disk": "ssd"}),
            json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
        );
        let spec = json!({"nodeSelector": {"disk": "hdd"}});
        assert_eq!(
            filter(&spec, &cp).unwrap_err().to_string(),
            "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"
        );
        let worker = node("w", json!({"disk": "ssd"}), Value::Null);
        assert_eq!(filter(&spec, &worker), Err(Unfit::Affinity));
        assert_eq!(
            filter(&json!({"nodeSelector": {"disk": "ssd"}}), &worker),
            Ok(())
        );
        let mut cordoned = worker.clone();
        cordoned["spec"]["unschedulable"] = json!(true);
        assert_eq!(filter(&json!({}), &cordoned), Err(Unfit::Unschedulable));
        let tolerant = json!({"tolerations": [{"key": UNSCHEDULABLE_TAINT, "operator": "Exists", "effect": "NoSchedule"}]});
        assert_eq!(filter(&tolerant, &cordoned), Ok(()));
        let soft = node(
            "s",
            json!({}),
            json!([{"key": "x", "effect": "PreferNoSchedule"}]),
        );
        assert_eq!(filter(&json!({}), &soft), Ok(()));
    }

    #[test]
    fn required_affinity_terms_are_ored_and_requirements_anded() {
        let worker = node("node2", json!({"zone": "a", "cores": "8"}), Value::Null);
        let affinity = |terms: Value| json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}});
        assert!(required_affinity_matches(
            &affinity(
                json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                              {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node2"]}]}])
            ),
            &worker
        ));
        assert!(!required_affinity_matches(
            &affinity(
                json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}],
                              "matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["node2"]}]}])
            ),
            &worker
        ));
        assert!(required_affinity_matches(
            &affinity(
                json!([{"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]}])
            ),
            &worker
        ));
        assert!(!required_affinity_matches(
            &affinity(
                json!([{"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["4"]}]}])
            ),
            &worker
        ));
        assert!(!required_affinity_matches(&affinity(json!([{}])), &worker));
        assert!(!required_affinity_matches(
            &affinity(
                json!([{"matchFields": [{"key": "metadata.labels", "operator": "In", "values": ["x"]}]}])
            ),
            &worker
        ));
    }

    #[test]
    fn prefilter_pins_daemon_pods_to_their_node() {
        let pinned = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node3"]}]}]}}}});
        assert_eq!(
            affinity_node_names(&pinned).unwrap(),
            Some(BTreeSet::from(["node3".to_string()]))
        );
        let conflict = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]},
                             {"key": "metadata.name", "operator": "In", "values": ["b"]}]}]}}}});
        assert_eq!(affinity_node_names(&conflict), Err(Unfit::AffinityConflict));
        let open = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]},
            {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}]}}}});
        assert_eq!(affinity_node_names(&open).unwrap(), None);
    }
}
