//! Which commands have a machine-readable result (`-o json|yaml`) and in which shape. Every other
//! command refuses `-o json|yaml` with exit 2 before it does anything, so no command accepts the flag
//! and ignores it; `-o short` is `kubestrap version`'s alone. docs/cli.md documents each shape under
//! the heading [`ResultShape::heading`] names.

use crate::error::InvalidInput;
use crate::output::Format;

/// The documented shapes of `-o json|yaml` results (`-o yaml` is the same document in YAML).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultShape {
    /// kubeadm's `output.kubeadm.k8s.io/v1alpha3` ClientVersion (`clientVersion`).
    Version,
    /// `{"checks": [{"id", "severity", "status", "message", "remediation"}]}`.
    Preflight,
    /// `{"removed", "kept", "left", "reboot_required"}`; with `--dry-run` `{"planned", "kept"}`.
    Reset,
    /// kubeadm's `output.kubeadm.k8s.io/v1alpha3` CertificateExpirationInfo.
    CertificateExpiration,
    /// kubeadm's `output.kubeadm.k8s.io/v1alpha3` Images.
    Images,
    /// The node record (`kubestrap.io/v1alpha1` NodeRecord).
    NodeRecord,
    /// The configuration documents, one JSON object each (a JSON stream), or YAML documents.
    ConfigDocuments,
    /// `{"file", "checked", "warnings"}`.
    ConfigValidation,
    /// kubeadm's `output.kubeadm.k8s.io/v1alpha3` BootstrapToken (one per token).
    BootstrapToken,
    /// `{"status", "checks": [{"kind", "name", "node", "status", "reason"}]}`.
    Status,
    /// `verify network`'s report (docs/verify.md).
    VerifyNetwork,
}

impl ResultShape {
    pub const ALL: [ResultShape; 11] = [
        ResultShape::Version,
        ResultShape::Preflight,
        ResultShape::Reset,
        ResultShape::CertificateExpiration,
        ResultShape::Images,
        ResultShape::NodeRecord,
        ResultShape::ConfigDocuments,
        ResultShape::ConfigValidation,
        ResultShape::BootstrapToken,
        ResultShape::Status,
        ResultShape::VerifyNetwork,
    ];

    /// The heading of the shape's section in docs/cli.md.
    pub fn heading(&self) -> &'static str {
        match self {
            ResultShape::Version => "Version",
            ResultShape::Preflight => "Preflight report",
            ResultShape::Reset => "Reset report",
            ResultShape::CertificateExpiration => "Certificate expiration",
            ResultShape::Images => "Image list",
            ResultShape::NodeRecord => "Node record",
            ResultShape::ConfigDocuments => "Configuration documents",
            ResultShape::ConfigValidation => "Validation result",
            ResultShape::BootstrapToken => "Bootstrap tokens",
            ResultShape::Status => "Cluster status",
            ResultShape::VerifyNetwork => "Network verification",
        }
    }

    /// GitHub's anchor of the heading.
    pub fn anchor(&self) -> String {
        self.heading().to_lowercase().replace(' ', "-")
    }
}

/// The result shape of the command at `path` (its subcommand names below `kubestrap`), if it has one.
pub fn result_shape(path: &[&str]) -> Option<ResultShape> {
    Some(match path {
        ["version"] => ResultShape::Version,
        ["init" | "join", "phase", "preflight"] => ResultShape::Preflight,
        ["reset", ..] => ResultShape::Reset,
        ["certs", "check-expiration"] => ResultShape::CertificateExpiration,
        ["config", "images", "list"] => ResultShape::Images,
        ["config", "view"] => ResultShape::NodeRecord,
        ["config", "print", _] => ResultShape::ConfigDocuments,
        ["config", "validate"] => ResultShape::ConfigValidation,
        ["token", "list" | "create"] => ResultShape::BootstrapToken,
        ["status"] => ResultShape::Status,
        ["verify", "network"] => ResultShape::VerifyNetwork,
        _ => return None,
    })
}

/// What the command at `path` accepts after `-o`.
pub fn formats(path: &[&str]) -> Vec<Format> {
    let mut formats = vec![Format::Text];
    if result_shape(path).is_some() {
        formats.extend([Format::Json, Format::Yaml]);
    }
    if path == ["version"] {
        formats.push(Format::Short);
    }
    formats
}

/// Refuses an `-o` the command at `path` cannot honour (exit 2, before anything runs).
pub fn check_format(path: &[&str], format: Format) -> Result<(), InvalidInput> {
    let accepted = formats(path);
    if accepted.contains(&format) {
        return Ok(());
    }
    let command = format!("'kubestrap {}'", path.join(" "));
    let reason = match format {
        Format::Short => format!(
            "-o short is only for 'kubestrap version'; {command} takes -o {}",
            names(&accepted)
        ),
        _ => format!(
            "{command} has no machine-readable result (it prints text only): leave out -o, or use -o text"
        ),
    };
    Err(InvalidInput::one("-o/--output", format.name(), reason))
}

fn names(formats: &[Format]) -> String {
    let names: Vec<&str> = formats.iter().map(Format::name).collect();
    match names.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_without_a_result_refuse_json_and_name_the_flag() {
        let err = check_format(&["token", "generate"], Format::Json).unwrap_err();
        assert_eq!(err.errors[0].field, "-o/--output");
        assert_eq!(err.errors[0].value, "json");
        assert!(check_format(&["token", "generate"], Format::Text).is_ok());
        assert!(check_format(&["init", "phase", "preflight"], Format::Yaml).is_ok());
        assert!(check_format(&["init", "phase", "certs", "ca"], Format::Yaml).is_err());
    }

    #[test]
    fn short_is_for_version_only() {
        assert!(check_format(&["version"], Format::Short).is_ok());
        let err = check_format(&["config", "view"], Format::Short).unwrap_err();
        assert!(
            err.errors[0].reason.contains("takes -o text, json or yaml"),
            "{err}"
        );
    }
}
