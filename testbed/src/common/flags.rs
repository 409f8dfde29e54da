//! Command lines parsed the way Go's pflag/cobra parse them, against a component's table of known flags.
//!
//! A double must refuse what the real binary refuses, so every component lists the flags its real
//! counterpart has; an unknown flag is an error with cobra's wording.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// The flags a component knows: names without the leading `--`; bool flags may be given without a value.
pub struct FlagTable {
    pub component: &'static str,
    pub value_flags: &'static [&'static str],
    pub bool_flags: &'static [&'static str],
    /// Single-letter shorthands (`-v`) and the long flag they stand for.
    pub shorthands: &'static [(char, &'static str)],
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlagError {
    #[error("unknown flag: --{0}")]
    Unknown(String),
    #[error("unknown shorthand flag: '{0}' in -{0}")]
    UnknownShorthand(char),
    #[error("flag needs an argument: --{0}")]
    MissingValue(String),
    #[error("invalid argument {value:?} for \"--{flag}\" flag: {reason}")]
    Invalid {
        flag: String,
        value: String,
        reason: String,
    },
    #[error("{component} does not take any arguments, got {args:?}")]
    Positional {
        component: String,
        args: Vec<String>,
    },
}

/// Parsed flags: every occurrence of every flag, in order.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    values: BTreeMap<String, Vec<String>>,
}

impl FlagTable {
    fn is_bool(&self, name: &str) -> bool {
        self.bool_flags.contains(&name)
    }

    fn is_known(&self, name: &str) -> bool {
        self.is_bool(name) || self.value_flags.contains(&name)
    }

    /// Parses `args` (without the program name). Positional arguments are refused, as the real
    /// components refuse them.
    pub fn parse(&self, args: &[String]) -> Result<Flags, FlagError> {
        let mut flags = Flags::default();
        let mut positional = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let arg = &args[i];
            i += 1;
            if arg == "--" {
                positional.extend(args[i..].iter().cloned());
                break;
            }
            let (name, inline) = if let Some(long) = arg.strip_prefix("--") {
                match long.split_once('=') {
                    Some((n, v)) => (n.to_string(), Some(v.to_string())),
                    None => (long.to_string(), None),
                }
            } else if let Some(short) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
                let mut chars = short.chars();
                let letter = chars.next().unwrap_or('-');
                let long = self
                    .shorthands
                    .iter()
                    .find(|(c, _)| *c == letter)
                    .map(|(_, l)| (*l).to_string())
                    .ok_or(FlagError::UnknownShorthand(letter))?;
                let rest: String = chars.collect();
                let rest = rest.strip_prefix('=').map(str::to_string).unwrap_or(rest);
                (long, if rest.is_empty() { None } else { Some(rest) })
            } else {
                positional.push(arg.clone());
                continue;
            };
            if !self.is_known(&name) {
                return Err(FlagError::Unknown(name));
            }
            let value = match inline {
                Some(v) => v,
                // `--version` takes an optional value (pflag's NoOptDefVal).
                None if self.is_bool(&name) || name == "version" => "true".to_string(),
                None => {
                    let v = args
                        .get(i)
                        .ok_or_else(|| FlagError::MissingValue(name.clone()))?;
                    i += 1;
                    v.clone()
                }
            };
            if self.is_bool(&name) {
                parse_bool(&value).map_err(|reason| FlagError::Invalid {
                    flag: name.clone(),
                    value: value.clone(),
                    reason,
                })?;
            }
            flags.values.entry(name).or_default().push(value);
        }
        if !positional.is_empty() {
            return Err(FlagError::Positional {
                component: self.component.to_string(),
                args: positional,
            });
        }
        Ok(flags)
    }
}

/// Go's strconv.ParseBool.
pub fn parse_bool(value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!(
            "strconv.ParseBool: parsing {value:?}: invalid syntax"
        )),
    }
}

impl Flags {
    /// The last value given for a flag (pflag keeps the last one for scalar flags).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    pub fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// A string flag, or its default.
    pub fn string(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_string()
    }

    /// A non-empty string flag, if given.
    pub fn non_empty(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty()).map(str::to_string)
    }

    /// A `strings` flag: every occurrence split at commas (pflag's StringSlice).
    pub fn list(&self, name: &str) -> Vec<String> {
        self.values
            .get(name)
            .map(|all| {
                all.iter()
                    .flat_map(|v| v.split(','))
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn bool(&self, name: &str, default: bool) -> Result<bool, FlagError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => parse_bool(v).map_err(|reason| invalid(name, v, reason)),
        }
    }

    pub fn int(&self, name: &str, default: i64) -> Result<i64, FlagError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                invalid(
                    name,
                    v,
                    format!("strconv.ParseInt: parsing {v:?}: invalid syntax"),
                )
            }),
        }
    }

    pub fn port(&self, name: &str, default: u16) -> Result<u16, FlagError> {
        let value = self.int(name, i64::from(default))?;
        u16::try_from(value).map_err(|_| {
            invalid(
                name,
                &value.to_string(),
                "must be a valid port between 0 and 65535".into(),
            )
        })
    }

    pub fn ip(&self, name: &str) -> Result<Option<IpAddr>, FlagError> {
        match self.non_empty(name) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| invalid(name, &v, "failed to parse IP".into())),
        }
    }

    pub fn duration(
        &self,
        name: &str,
        default: std::time::Duration,
    ) -> Result<std::time::Duration, FlagError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<kubestrap::config::duration::GoDuration>()
                .map(|d| d.as_duration())
                .map_err(|e| invalid(name, v, e.to_string())),
        }
    }
}

pub fn invalid(flag: &str, value: &str, reason: String) -> FlagError {
    FlagError::Invalid {
        flag: flag.to_string(),
        value: value.to_string(),
        reason,
    }
}

/// Flags every Kubernetes component binary has (klog, logging, version, help).
pub const COMMON_VALUE_FLAGS: &[&str] = &[
    "v",
    "vmodule",
    "log-flush-frequency",
    "logging-format",
    "log-text-info-buffer-size",
    "version",
];
/// Two flag lists joined into one that lives as long as the process (a component's table).
pub fn leak_concat(
    a: &'static [&'static str],
    b: &'static [&'static str],
) -> &'static [&'static str] {
    let joined: Vec<&'static str> = a.iter().chain(b.iter()).copied().collect();
    Box::leak(joined.into_boxed_slice())
}

pub const COMMON_BOOL_FLAGS: &[&str] = &["help", "log-text-split-stream"];

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: FlagTable = FlagTable {
        component: "\"kube-thing\"",
        value_flags: &["name", "list", "v"],
        bool_flags: &["enable"],
        shorthands: &[('v', "v")],
    };

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn equals_space_bool_and_shorthand_forms() {
        let f = TABLE
            .parse(&args(&[
                "--name=a", "--list", "x,y", "--enable", "-v", "2", "--list=z",
            ]))
            .unwrap();
        assert_eq!(f.get("name"), Some("a"));
        assert_eq!(f.list("list"), vec!["x", "y", "z"]);
        assert!(f.bool("enable", false).unwrap());
        assert_eq!(f.int("v", 0).unwrap(), 2);
        let f = TABLE.parse(&args(&["--enable=false", "-v=3"])).unwrap();
        assert!(!f.bool("enable", true).unwrap());
        assert_eq!(f.get("v"), Some("3"));
    }

    #[test]
    fn unknown_flags_bad_bools_and_positionals_are_refused() {
        assert_eq!(
            TABLE.parse(&args(&["--nope=1"])).unwrap_err(),
            FlagError::Unknown("nope".into())
        );
        assert_eq!(
            TABLE
                .parse(&args(&["--enable=maybe"]))
                .unwrap_err()
                .to_string(),
            "invalid argument \"maybe\" for \"--enable\" flag: strconv.ParseBool: parsing \"maybe\": invalid syntax"
        );
        assert!(matches!(
            TABLE.parse(&args(&["stray"])).unwrap_err(),
            FlagError::Positional { .. }
        ));
        assert_eq!(
            TABLE.parse(&args(&["--name"])).unwrap_err(),
            FlagError::MissingValue("name".into())
        );
        assert_eq!(
            TABLE.parse(&args(&["-x"])).unwrap_err(),
            FlagError::UnknownShorthand('x')
        );
    }
}
