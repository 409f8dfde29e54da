//! Renders the tera templates under `templates/` (embedded in the binary) into typed Kubernetes objects.
//!
//! A rendering is accepted only when it parses back into the typed object *and* re-encoding that
//! object gives exactly what the template produced (see [`typed`]): a mis-indented line, a typo in
//! a field name or a value of the wrong type is a template error at render time, never a manifest
//! the kubelet silently reads differently.

pub mod typed;

use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;
use tera::{Context, Kwargs, State, Tera, TeraResult, Value};

pub use typed::{TypedError, decode_checked};

/// Every template shipped with the binary: (name, text).
pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "static-pods/etcd.yaml",
        include_str!("../../templates/static-pods/etcd.yaml"),
    ),
    (
        "static-pods/kube-apiserver.yaml",
        include_str!("../../templates/static-pods/kube-apiserver.yaml"),
    ),
    (
        "static-pods/kube-controller-manager.yaml",
        include_str!("../../templates/static-pods/kube-controller-manager.yaml"),
    ),
    (
        "static-pods/kube-scheduler.yaml",
        include_str!("../../templates/static-pods/kube-scheduler.yaml"),
    ),
    (
        "static-pods/metadata.yaml",
        include_str!("../../templates/static-pods/metadata.yaml"),
    ),
    (
        "static-pods/container.yaml",
        include_str!("../../templates/static-pods/container.yaml"),
    ),
    (
        "static-pods/pod-spec.yaml",
        include_str!("../../templates/static-pods/pod-spec.yaml"),
    ),
    (
        "addons/coredns.yaml",
        include_str!("../../addons/coredns.yaml"),
    ),
    (
        "addons/kube-proxy.yaml",
        include_str!("../../addons/kube-proxy.yaml"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template {template}: {message}")]
    Template { template: String, message: String },
    #[error("template {template} does not produce valid YAML: {message}")]
    Yaml { template: String, message: String },
    #[error("template {template}: {source}")]
    Typed {
        template: String,
        #[source]
        source: TypedError,
    },
}

/// A tera engine loaded with templates and kubestrap's `json` filter.
pub struct Renderer {
    tera: Tera,
}

impl Renderer {
    /// The engine with every embedded template.
    pub fn new() -> Result<Self, RenderError> {
        Self::with_templates(TEMPLATES)
    }

    /// An engine with the given templates (tests feed broken ones to prove they are rejected).
    pub fn with_templates(templates: &[(&str, &str)]) -> Result<Self, RenderError> {
        let mut tera = Tera::default();
        tera.register_filter("json", json_filter);
        tera.add_raw_templates(templates.iter().copied())
            .map_err(|e| RenderError::Template {
                template: "(loading)".to_string(),
                message: error_text(&e),
            })?;
        Ok(Renderer { tera })
    }

    /// Renders one template to text.
    pub fn render_text<T: Serialize>(
        &self,
        template: &str,
        values: &T,
    ) -> Result<String, RenderError> {
        let fail = |message: String| RenderError::Template {
            template: template.to_string(),
            message,
        };
        let context = Context::from_serialize(values).map_err(|e| fail(error_text(&e)))?;
        self.tera
            .render(template, &context)
            .map_err(|e| fail(error_text(&e)))
    }

    /// Renders a template that produces one Pod and parses it back into a typed, checked [`Pod`].
    pub fn render_pod<T: Serialize>(&self, template: &str, values: &T) -> Result<Pod, RenderError> {
        let text = self.render_text(template, values)?;
        let value: serde_json::Value =
            crate::yaml::from_str(&text).map_err(|e| RenderError::Yaml {
                template: template.to_string(),
                message: e.to_string(),
            })?;
        decode_checked::<Pod>(&value, "Pod").map_err(|source| RenderError::Typed {
            template: template.to_string(),
            source,
        })
    }
}

/// `{{ x | json }}`: the value as JSON, which is also a YAML scalar (or flow collection) that no
/// quoting or indentation in the template can break.
/// An undefined value is an error, not `null`: it is always a template mistake.
fn json_filter(value: &Value, _: Kwargs, _: &State) -> TeraResult<String> {
    if value.is_undefined() {
        return Err(tera::Error::message("json filter: the value is undefined"));
    }
    serde_json::to_string(value).map_err(|e| tera::Error::message(format!("json filter: {e}")))
}

/// Tera's error with its causes, on one line each.
fn error_text(err: &tera::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_filter_quotes_anything_safely() {
        let r = Renderer::with_templates(&[(
            "t",
            "a: {{ s | json }}\nb: {{ n | json }}\nc: {{ m | json }}\n",
        )])
        .unwrap();
        let text = r
            .render_text(
                "t",
                &json!({"s": "yes: no\n- [x]", "n": 8, "m": {"k": "v #"}}),
            )
            .unwrap();
        let back: serde_json::Value = crate::yaml::from_str(&text).unwrap();
        assert_eq!(
            back,
            json!({"a": "yes: no\n- [x]", "b": 8, "c": {"k": "v #"}})
        );
    }

    #[test]
    fn undefined_values_are_errors() {
        let r = Renderer::with_templates(&[
            ("plain", "a: {{ missing }}\n"),
            ("filtered", "a: {{ missing | json }}\n"),
            ("field", "a: {{ known.missing | json }}\n"),
        ])
        .unwrap();
        for name in ["plain", "filtered", "field"] {
            let err = r.render_text(name, &json!({"known": {}})).unwrap_err();
            assert!(matches!(err, RenderError::Template { .. }), "{name}: {err}");
        }
    }
}
