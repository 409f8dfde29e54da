//! Defaults and validation of the apps/v1 workloads the controller-manager double reconciles
//! (Deployment, ReplicaSet, DaemonSet) and of their pod templates, with the real server's field
//! paths and wording: a selector that does not select its own template is refused, as upstream,
//! so a controller never creates pods it cannot count.

use serde_json::{Value, json};

use super::validation::Causes;
use crate::common::labels;

/// A defaulted field and how to make its default.
type Default = (&'static str, fn() -> Value);

/// The pod-spec defaults of SetDefaults_PodSpec that the double applies (pods and templates).
pub const POD_SPEC_DEFAULTS: &[Default] = &[
    ("restartPolicy", || json!("Always")),
    ("dnsPolicy", || json!("ClusterFirst")),
    ("schedulerName", || json!("default-scheduler")),
    ("terminationGracePeriodSeconds", || json!(30)),
];

pub fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    for (field, default) in POD_SPEC_DEFAULTS {
        if spec[*field].is_null() {
            spec[*field] = default();
        }
    }
}

fn default_if_null(value: &mut Value, default: Value) {
    if value.is_null() {
        *value = default;
    }
}

/// SetDefaults_Deployment / _ReplicaSet / _DaemonSet of apps/v1, and the template's pod spec.
pub fn apply_defaults(kind: &str, obj: &mut Value) {
    if !obj["spec"].is_object() {
        return;
    }
    let spec = &mut obj["spec"];
    match kind {
        "Deployment" => {
            default_if_null(&mut spec["replicas"], json!(1));
            default_if_null(&mut spec["strategy"]["type"], json!("RollingUpdate"));
            if spec["strategy"]["type"] == "RollingUpdate" {
                default_if_null(
                    &mut spec["strategy"]["rollingUpdate"]["maxUnavailable"],
                    json!("25%"),
                );
                default_if_null(
                    &mut spec["strategy"]["rollingUpdate"]["maxSurge"],
                    json!("25%"),
                );
            }
            default_if_null(&mut spec["revisionHistoryLimit"], json!(10));
            default_if_null(&mut spec["progressDeadlineSeconds"], json!(600));
        }
        "ReplicaSet" => default_if_null(&mut spec["replicas"], json!(1)),
        "DaemonSet" => {
            default_if_null(&mut spec["updateStrategy"]["type"], json!("RollingUpdate"));
            if spec["updateStrategy"]["type"] == "RollingUpdate" {
                default_if_null(
                    &mut spec["updateStrategy"]["rollingUpdate"]["maxUnavailable"],
                    json!(1),
                );
                default_if_null(
                    &mut spec["updateStrategy"]["rollingUpdate"]["maxSurge"],
                    json!(0),
                );
            }
            default_if_null(&mut spec["revisionHistoryLimit"], json!(10));
        }
        _ => return,
    }
    default_pod_spec(&mut obj["spec"]["template"]["spec"]);
}

/// Go's `%#v` of a map[string]string, as validation messages print label maps.
fn go_map(labels: &Value) -> String {
    let pairs: Vec<String> = labels
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k:?}:{:?}", v.as_str().unwrap_or_default()))
        .collect();
    format!("map[string]string{{{}}}", pairs.join(", "))
}

/// An int-or-percent value: (the number, whether it is a percentage), or None when malformed.
pub fn int_or_percent(value: &Value) -> Option<(i64, bool)> {
    match value {
        Value::Number(n) => n.as_i64().map(|v| (v, false)),
        Value::String(s) => s
            .strip_suffix('%')
            .and_then(|p| p.parse().ok())
            .map(|v| (v, true)),
        _ => None,
    }
}

fn validate_int_or_percent(value: &Value, field: &str, causes: &mut Causes) -> Option<i64> {
    if value.is_null() {
        return None;
    }
    match int_or_percent(value) {
        None => {
            causes.push((
                field.into(),
                format!("Invalid value: {value}: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"),
            ));
            None
        }
        Some((v, _)) if v < 0 => {
            causes.push((
                field.into(),
                format!("Invalid value: {v}: must be greater than or equal to 0"),
            ));
            None
        }
        Some((v, true)) if v > 100 => {
            causes.push((
                field.into(),
                format!("Invalid value: {value}: must not be greater than 100%"),
            ));
            None
        }
        Some((v, _)) => Some(v),
    }
}

/// The checks the real ValidateDeployment/ReplicaSet/DaemonSet make that the controllers rely on.
pub fn validate(kind: &str, obj: &Value, causes: &mut Causes) {
    let spec = &obj["spec"];
    if (kind == "Deployment" || kind == "ReplicaSet")
        && let Some(replicas) = spec["replicas"].as_i64()
        && replicas < 0
    {
        causes.push((
            "spec.replicas".into(),
            format!("Invalid value: {replicas}: must be greater than or equal to 0"),
        ));
    }
    let selector = &spec["selector"];
    if !selector.is_object() {
        causes.push(("spec.selector".into(), "Required value".into()));
    } else if labels::selector_is_empty(selector) {
        causes.push((
            "spec.selector".into(),
            format!(
                "Invalid value: {selector}: empty selector is invalid for {}",
                kind.to_lowercase()
            ),
        ));
    } else {
        let template_labels = &spec["template"]["metadata"]["labels"];
        if !labels::selector_matches(selector, template_labels) {
            causes.push((
                "spec.template.metadata.labels".into(),
                format!(
                    "Invalid value: {}: `selector` does not match template `labels`",
                    go_map(template_labels)
                ),
            ));
        }
    }
    let template = &spec["template"]["spec"];
    if template["containers"]
        .as_array()
        .is_none_or(|c| c.is_empty())
    {
        causes.push((
            "spec.template.spec.containers".into(),
            "Required value".into(),
        ));
    }
    if let Some(policy) = template["restartPolicy"].as_str()
        && policy != "Always"
    {
        causes.push((
            "spec.template.spec.restartPolicy".into(),
            format!("Unsupported value: {policy:?}: supported values: \"Always\""),
        ));
    }
    match kind {
        "Deployment" => validate_deployment_strategy(spec, causes),
        "DaemonSet" => validate_daemonset_strategy(spec, causes),
        _ => {}
    }
}

fn validate_deployment_strategy(spec: &Value, causes: &mut Causes) {
    let strategy = &spec["strategy"];
    match strategy["type"].as_str() {
        Some("Recreate") => {
            if !strategy["rollingUpdate"].is_null() {
                causes.push((
                    "spec.strategy.rollingUpdate".into(),
                    "Forbidden: may not be specified when strategy `type` is 'Recreate'".into(),
                ));
            }
        }
        Some("RollingUpdate") => {
            let rolling = &strategy["rollingUpdate"];
            let surge = validate_int_or_percent(
                &rolling["maxSurge"],
                "spec.strategy.rollingUpdate.maxSurge",
                causes,
            );
            let unavailable = validate_int_or_percent(
                &rolling["maxUnavailable"],
                "spec.strategy.rollingUpdate.maxUnavailable",
                causes,
            );
            if surge == Some(0) && unavailable == Some(0) {
                causes.push((
                    "spec.strategy.rollingUpdate.maxUnavailable".into(),
                    "Invalid value: 0: may not be 0 when `maxSurge` is 0".into(),
                ));
            }
        }
        other => causes.push((
            "spec.strategy.type".into(),
            format!(
                "Unsupported value: {:?}: supported values: \"Recreate\", \"RollingUpdate\"",
                other.unwrap_or_default()
            ),
        )),
    }
    if let (Some(deadline), min_ready) = (
        spec["progressDeadlineSeconds"].as_i64(),
        spec["minReadySeconds"].as_i64().unwrap_or(0),
    ) && deadline <= min_ready
    {
        causes.push((
            "spec.progressDeadlineSeconds".into(),
            format!("Invalid value: {deadline}: must be greater than minReadySeconds"),
        ));
    }
}

fn validate_daemonset_strategy(spec: &Value, causes: &mut Causes) {
    let strategy = &spec["updateStrategy"];
    match strategy["type"].as_str() {
        Some("OnDelete") => {}
        Some("RollingUpdate") => {
            let rolling = &strategy["rollingUpdate"];
            let surge = validate_int_or_percent(
                &rolling["maxSurge"],
                "spec.updateStrategy.rollingUpdate.maxSurge",
                causes,
            );
            let unavailable = validate_int_or_percent(
                &rolling["maxUnavailable"],
                "spec.updateStrategy.rollingUpdate.maxUnavailable",
                causes,
            );
            if surge == Some(0) && unavailable == Some(0) {
                causes.push((
                    "spec.updateStrategy.rollingUpdate.maxUnavailable".into(),
                    "Invalid value: 0: may not be 0 when `maxSurge` is 0".into(),
                ));
            }
        }
        other => causes.push((
            "spec.updateStrategy".into(),
            format!(
                "Unsupported value: {:?}: supported values: \"OnDelete\", \"RollingUpdate\"",
                other.unwrap_or_default()
            ),
        )),
    }
}

/// The DaemonSet registry's template generation, published as the
/// `deprecated.daemonset.template.generation` annotation: 1 on create, +1 on every template change.
pub fn daemonset_template_generation(old: Option<&Value>, new: &mut Value) {
    const KEY: &str = "deprecated.daemonset.template.generation";
    let previous = old.and_then(|o| {
        o["metadata"]["annotations"][KEY]
            .as_str()
            .and_then(|g| g.parse::<i64>().ok())
    });
    let generation = match (old, previous) {
        (Some(o), Some(p)) if o["spec"]["template"] != new["spec"]["template"] => p + 1,
        (Some(_), Some(p)) => p,
        _ => 1,
    };
    if !new["metadata"]["annotations"].is_object() {
        new["metadata"]["annotations"] = json!({});
    }
    new["metadata"]["annotations"][KEY] = json!(generation.to_string());
}

/// apps/v1 selectors are immutable.
pub fn validate_update(old: &Value, new: &Value, causes: &mut Causes) {
    if old["spec"]["selector"] != new["spec"]["selector"] {
        causes.push((
            "spec.selector".into(),
            format!(
                "Invalid value: {}: field is immutable",
                new["spec"]["selector"]
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(selector: Value, labels: Value) -> Value {
        json!({"metadata": {"name": "web"}, "spec": {"selector": selector, "template": {
            "metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    }

    #[test]
    fn defaults_are_the_apps_v1_ones() {
        let mut d = deployment(
            json!({"matchLabels": {"app": "web"}}),
            json!({"app": "web"}),
        );
        apply_defaults("Deployment", &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
        let mut ds = deployment(
            json!({"matchLabels": {"app": "web"}}),
            json!({"app": "web"}),
        );
        apply_defaults("DaemonSet", &mut ds);
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
    }

    #[test]
    fn a_selector_must_select_its_template() {
        let mut causes = Causes::new();
        let mut d = deployment(json!({"matchLabels": {"app": "web"}}), json!({"app": "db"}));
        apply_defaults("Deployment", &mut d);
        validate("Deployment", &d, &mut causes);
        assert_eq!(
            causes,
            vec![(
                "spec.template.metadata.labels".to_string(),
                "Invalid value: map[string]string{\"app\":\"db\"}: `selector` does not match template `labels`".to_string()
            )]
        );
        let mut causes = Causes::new();
        validate(
            "ReplicaSet",
            &deployment(Value::Null, json!({})),
            &mut causes,
        );
        assert_eq!(causes[0].0, "spec.selector");
        let mut causes = Causes::new();
        let mut d = deployment(
            json!({"matchLabels": {"app": "web"}}),
            json!({"app": "web"}),
        );
        d["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}});
        validate("Deployment", &d, &mut causes);
        assert!(
            causes[0].1.contains("may not be 0 when `maxSurge` is 0"),
            "{causes:?}"
        );
    }
}
