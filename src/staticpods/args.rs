//! Component command lines the way kubeadm builds them (K: `util/arguments.go`).
//!
//! Base arguments are a list of `{name, value}`. User `extraArgs` with a name that also occurs in
//! the base replace *every* base entry of that name; extra args with new names are added; the
//! result is sorted by name, then value, and each entry renders as `--name=value`.

use crate::config::types::Arg;

/// A component's default arguments while they are being assembled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BaseArgs(Vec<Arg>);

impl BaseArgs {
    pub fn new(args: &[(&str, &str)]) -> Self {
        BaseArgs(args.iter().map(|(n, v)| Arg::new(*n, *v)).collect())
    }

    /// kubeadm's `SetArgValues(args, name, value, 1)`: all entries of `name` become one entry with `value`.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.0.iter().position(|a| a.name == name) {
            Some(first) => {
                self.0[first].value = value;
                let mut index = 0;
                self.0.retain(|a| {
                    let keep = a.name != name || index == first;
                    index += 1;
                    keep
                });
            }
            None => self.0.push(Arg::new(name, value)),
        }
    }

    /// The sorted `--name=value` list after applying `overrides` (the user's `extraArgs`).
    pub fn to_command(&self, overrides: &[Arg]) -> Vec<String> {
        let mut args: Vec<&Arg> = overrides.iter().collect();
        args.extend(
            self.0
                .iter()
                .filter(|base| !overrides.iter().any(|o| o.name == base.name)),
        );
        args.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.value.cmp(&b.value)));
        args.iter()
            .map(|a| format!("--{}={}", a.name, a.value))
            .collect()
    }
}

pub use crate::config::types::last_value;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_every_base_entry_and_new_names_are_added_sorted() {
        let mut base = BaseArgs::new(&[("b", "2"), ("a", "1"), ("m", "x"), ("m", "y")]);
        base.set("c", "3");
        let overrides = vec![Arg::new("m", "z"), Arg::new("m", "a"), Arg::new("aa", "0")];
        assert_eq!(
            base.to_command(&overrides),
            vec!["--a=1", "--aa=0", "--b=2", "--c=3", "--m=a", "--m=z"]
        );
    }

    #[test]
    fn set_collapses_all_entries_of_a_name() {
        let mut base = BaseArgs::new(&[("m", "x"), ("a", "1"), ("m", "y")]);
        base.set("m", "only");
        assert_eq!(base.to_command(&[]), vec!["--a=1", "--m=only"]);
    }

    #[test]
    fn empty_values_render_as_name_equals_nothing() {
        let base = BaseArgs::new(&[("cluster-signing-key-file", "")]);
        assert_eq!(base.to_command(&[]), vec!["--cluster-signing-key-file="]);
    }

    #[test]
    fn last_value_wins() {
        let args = vec![Arg::new("x", "1"), Arg::new("x", "2")];
        assert_eq!(last_value(&args, "x"), Some("2"));
        assert_eq!(last_value(&args, "y"), None);
    }
}
