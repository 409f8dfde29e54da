//! Error kinds that decide the process exit code: invalid input (2) versus any other failure (1).

use std::fmt;

/// One problem with a flag, argument or configuration field: which one, the value, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub value: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(
        field: impl Into<String>,
        value: impl fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: Invalid value: {:?}: {}",
            self.field, self.value, self.reason
        )
    }
}

/// Invalid flags, arguments or configuration. Maps to exit code 2; raised before anything is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidInput {
    pub errors: Vec<FieldError>,
}

impl InvalidInput {
    pub fn one(
        field: impl Into<String>,
        value: impl fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            errors: vec![FieldError::new(field, value, reason)],
        }
    }

    /// Turns a collected list into an error, or `Ok(())` when it is empty.
    pub fn check(errors: Vec<FieldError>) -> Result<(), InvalidInput> {
        if errors.is_empty() {
            Ok(())
        } else {
            Err(InvalidInput { errors })
        }
    }
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errors.as_slice() {
            [one] => write!(f, "invalid input: {one}"),
            many => {
                write!(f, "invalid input ({} errors):", many.len())?;
                for e in many {
                    write!(f, "\n\t{e}")?;
                }
                Ok(())
            }
        }
    }
}

/// A command refused as it was used, where no single flag or field is at fault (a real `reset` with no
/// terminal to confirm on and no `--force`). Maps to exit code 2, like invalid input; nothing is changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// An error and its causes joined with ": ", dropping a cause whose text the previous one already
/// contains (transport errors often repeat their source in their own message).
pub fn describe(err: &anyhow::Error) -> String {
    let mut text = String::new();
    let mut previous = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if !previous.is_empty() && previous.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
        previous = part;
    }
    text
}

/// The exit code a finished command maps to.
pub fn exit_code_for(err: &anyhow::Error) -> i32 {
    if err
        .chain()
        .any(|cause| cause.is::<InvalidInput>() || cause.is::<Refused>())
    {
        2
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_input_maps_to_two_even_with_context() {
        let err = anyhow::Error::new(InvalidInput::one("networking.podSubnet", "x", "not a CIDR"))
            .context("loading configuration");
        assert_eq!(exit_code_for(&err), 2);
        assert_eq!(exit_code_for(&anyhow::anyhow!("boom")), 1);
        let refused = anyhow::Error::new(Refused("needs a terminal".into())).context("reset");
        assert_eq!(exit_code_for(&refused), 2);
    }

    #[test]
    fn describe_drops_causes_repeated_by_their_parent() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let err = anyhow::Error::new(io)
            .context("transport error: No such file")
            .context("connecting to /run/x.sock");
        assert_eq!(
            describe(&err),
            "connecting to /run/x.sock: transport error: No such file"
        );
    }

    #[test]
    fn message_names_field_and_value() {
        let e = InvalidInput::one("networking.podSubnet", "10.0.0.0/33", "not a valid CIDR");
        let text = e.to_string();
        assert!(text.contains("networking.podSubnet"));
        assert!(text.contains("10.0.0.0/33"));
    }
}
