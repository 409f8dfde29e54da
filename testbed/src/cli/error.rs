//! The command line's errors and their exit codes: 2 when what the user typed is wrong (a bad
//! argument, an unknown cluster or node, a name in use), 1 when the engine or an operation fails.

/// An error `kubestrap-testbed` prints (`kubestrap-testbed: error: …`) before exiting.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{0:#}")]
    Failed(#[from] anyhow::Error),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Failed(_) => 1,
        }
    }
}

pub type CliResult<T> = Result<T, CliError>;

/// A usage error (exit 2).
pub fn usage(message: impl Into<String>) -> CliError {
    CliError::Usage(message.into())
}

/// An operational failure with a message of its own (exit 1).
pub fn failed(message: impl Into<String>) -> CliError {
    CliError::Failed(anyhow::anyhow!(message.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn usage_errors_exit_2_and_failures_exit_1_with_their_context() {
        assert_eq!(usage("no node node9").exit_code(), 2);
        let err: CliError = Err::<(), _>(anyhow::anyhow!("connection refused"))
            .context("stop node1")
            .unwrap_err()
            .into();
        assert_eq!(err.exit_code(), 1);
        assert_eq!(err.to_string(), "stop node1: connection refused");
    }
}
