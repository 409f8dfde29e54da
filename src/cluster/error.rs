//! What can go wrong talking to an API server, worded for the admin: which call, which object, which server.

use std::time::Duration;

/// A failed call of the cluster gateway.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The connection settings cannot be used (bad server URL, unreadable CA or key).
    #[error("{source_name}: {reason}")]
    Connection { source_name: String, reason: String },
    /// The API server answered with an error status.
    #[error("{what}: {message} (HTTP {code}{})", reason_suffix(reason))]
    Api {
        what: String,
        code: u16,
        reason: String,
        message: String,
    },
    /// No answer that could be used (connection refused, TLS failure, broken stream), after retrying
    /// the transient ones for `elapsed`.
    #[error("{what}: {detail}{}", retried(*attempts, *elapsed))]
    Transport {
        what: String,
        detail: String,
        attempts: u32,
        elapsed: Duration,
    },
    /// The server does not serve this apiVersion and kind.
    #[error("{what}: the API server has no kind {kind:?} in {api_version:?}")]
    UnknownKind {
        what: String,
        api_version: String,
        kind: String,
    },
    /// A wait's deadline passed before its condition held.
    #[error("timed out after {}s waiting for {what}{}", after.as_secs_f32(), last_seen(last))]
    WaitTimedOut {
        what: String,
        after: Duration,
        last: String,
    },
    /// An object or manifest the gateway cannot act on (no name, no kind, not YAML…).
    #[error("{0}")]
    Invalid(String),
    /// The journal entry or the backup copy that must precede a change could not be written; the
    /// change was not sent.
    #[error("{0}")]
    Journal(String),
    /// The blocking API was called from inside an async runtime, where it would deadlock.
    #[error("the cluster gateway's blocking calls cannot run inside an async runtime ({0})")]
    InsideRuntime(String),
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(", {reason}")
    }
}

fn retried(attempts: u32, elapsed: Duration) -> String {
    if attempts > 1 {
        format!(
            " (tried {attempts} times over {:.1}s)",
            elapsed.as_secs_f32()
        )
    } else {
        String::new()
    }
}

fn last_seen(last: &str) -> String {
    if last.is_empty() {
        String::new()
    } else {
        format!(" (last seen: {last})")
    }
}

impl ClusterError {
    /// The HTTP status of an API error.
    pub fn code(&self) -> Option<u16> {
        match self {
            ClusterError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    pub fn is_already_exists(&self) -> bool {
        matches!(self, ClusterError::Api { code: 409, reason, .. } if reason == "AlreadyExists")
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, ClusterError::Api { code: 409, reason, .. } if reason == "Conflict")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_call_the_status_and_the_retries() {
        let api = ClusterError::Api {
            what: "creating ConfigMap \"kube-system/x\"".into(),
            code: 422,
            reason: "Invalid".into(),
            message: "data[a b]: Invalid value".into(),
        };
        assert_eq!(
            api.to_string(),
            "creating ConfigMap \"kube-system/x\": data[a b]: Invalid value (HTTP 422, Invalid)"
        );
        let transport = ClusterError::Transport {
            what: "reading Node \"n1\" at https://10.0.0.1:6443".into(),
            detail: "connection refused".into(),
            attempts: 7,
            elapsed: Duration::from_millis(5200),
        };
        assert!(
            transport
                .to_string()
                .ends_with("connection refused (tried 7 times over 5.2s)")
        );
        let wait = ClusterError::WaitTimedOut {
            what: "Node \"n1\" to be Ready".into(),
            after: Duration::from_secs(2),
            last: "Ready=False (KubeletNotReady)".into(),
        };
        assert_eq!(
            wait.to_string(),
            "timed out after 2s waiting for Node \"n1\" to be Ready (last seen: Ready=False (KubeletNotReady))"
        );
    }
}
