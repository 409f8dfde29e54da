//! The result of a preflight run: one entry per check, printed kubeadm-style (`[WARNING id]`,
//! `[ERROR id]`) or as the `{"checks": […]}` document of `-o json|yaml`.

use serde::Serialize;

use super::catalogue::Severity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

/// One check's result, in the JSON shape docs/cli.md documents ("Preflight report").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub id: String,
    /// The severity of a failure; an ignored error is reported as a warning.
    pub severity: Severity,
    pub status: Status,
    pub message: String,
    pub remediation: String,
}

impl CheckResult {
    pub fn is_error(&self) -> bool {
        self.status == Status::Fail && self.severity == Severity::Error
    }

    pub fn is_warning(&self) -> bool {
        self.status == Status::Fail && self.severity == Severity::Warning
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub checks: Vec<CheckResult>,
}

impl Report {
    /// The result of a check by id (case-insensitive).
    pub fn get(&self, id: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.id.eq_ignore_ascii_case(id))
    }

    pub fn errors(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| c.is_error())
    }

    pub fn warnings(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| c.is_warning())
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// `\t[WARNING id]: message` lines, each followed by its remedy.
    pub fn warning_lines(&self) -> Vec<String> {
        self.warnings()
            .flat_map(|c| {
                [
                    format!("\t[WARNING {}]: {}", c.id, c.message),
                    format!("\t\tremedy: {}", c.remediation),
                ]
            })
            .collect()
    }

    /// kubeadm's block of fatal errors, each followed by its remedy; empty when there are none.
    pub fn error_lines(&self) -> Vec<String> {
        if !self.has_errors() {
            return Vec::new();
        }
        let mut lines = vec!["[preflight] Some fatal errors occurred:".to_string()];
        for c in self.errors() {
            lines.push(format!("\t[ERROR {}]: {}", c.id, c.message));
            lines.push(format!("\t\tremedy: {}", c.remediation));
        }
        lines.push(
            "[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`"
                .to_string(),
        );
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &str, severity: Severity, status: Status) -> CheckResult {
        CheckResult {
            id: id.to_string(),
            severity,
            status,
            message: format!("{id} message"),
            remediation: format!("{id} remedy"),
        }
    }

    #[test]
    fn kubeadm_style_lines_with_remedies() {
        let report = Report {
            checks: vec![
                result("Swap", Severity::Warning, Status::Fail),
                result("Port-6443", Severity::Error, Status::Fail),
                result("Mem", Severity::Error, Status::Pass),
                result("KernelConfig-Flannel", Severity::Error, Status::Skip),
            ],
        };
        assert_eq!(
            report.warning_lines(),
            vec!["\t[WARNING Swap]: Swap message", "\t\tremedy: Swap remedy"]
        );
        let errors = report.error_lines();
        assert_eq!(errors[0], "[preflight] Some fatal errors occurred:");
        assert_eq!(errors[1], "\t[ERROR Port-6443]: Port-6443 message");
        assert!(errors[3].contains("--ignore-preflight-errors"));
        assert_eq!(errors.len(), 4);
        assert!(report.get("port-6443").is_some());
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["checks"][0]["severity"], "warning");
        assert_eq!(json["checks"][3]["status"], "skip");
    }
}
