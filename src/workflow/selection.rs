//! `<command> phase <name> [sub…]` subcommands, generated from a workflow's phase tree (any depth).

use std::marker::PhantomData;

use clap::{Arg, ArgMatches, Command, FromArgMatches, Subcommand, error::ErrorKind};

use super::{PhaseInfo, Target};

/// A workflow whose phase tree the CLI can describe without running anything.
pub trait PhaseTree {
    fn tree() -> Vec<PhaseInfo>;

    /// An optional positional argument every phase subcommand accepts (name, help), such as
    /// join's `[api-server-endpoint]` in `join phase preflight 10.0.0.1:6443`.
    fn positional() -> Option<(&'static str, &'static str)> {
        None
    }
}

/// The phase (and optional sub-phase) picked on the command line.
#[derive(Debug, Clone)]
pub struct PhaseSelection<W> {
    pub target: Target,
    /// The value of the tree's [`PhaseTree::positional`] argument, when given.
    pub positional: Option<String>,
    _tree: PhantomData<W>,
}

impl<W> PhaseSelection<W> {
    pub fn new(target: Target) -> Self {
        PhaseSelection {
            target,
            positional: None,
            _tree: PhantomData,
        }
    }
}

fn with_positional<W: PhaseTree>(cmd: Command) -> Command {
    match W::positional() {
        Some((name, help)) => cmd.arg(Arg::new(name).help(help).required(false)),
        None => cmd,
    }
}

impl<W: PhaseTree> FromArgMatches for PhaseSelection<W> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut path = Vec::new();
        let mut levels = Vec::new();
        let mut current = matches;
        while let Some((name, sub)) = current.subcommand() {
            path.push(name.to_string());
            levels.push(sub);
            current = sub;
        }
        if path.is_empty() {
            return Err(clap::Error::raw(
                ErrorKind::MissingSubcommand,
                "a phase name is required\n",
            ));
        }
        let mut selection = PhaseSelection::new(Target { path });
        if let Some((arg, _)) = W::positional() {
            // The deepest level that got it (the argument is accepted at every level).
            selection.positional = levels
                .iter()
                .rev()
                .find_map(|m| m.get_one::<String>(arg).cloned());
        }
        Ok(selection)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

/// The subcommand of one phase, with an `all` child and a subcommand per sub-phase when it has any.
fn phase_command<W: PhaseTree>(phase: &PhaseInfo) -> Command {
    let mut cmd = with_positional::<W>(Command::new(phase.name).about(phase.help));
    if !phase.children.is_empty() {
        cmd = cmd.subcommand(with_positional::<W>(
            Command::new("all").about(format!("Run every {} sub-phase", phase.name)),
        ));
        for child in phase.children.iter().filter(|c| !c.hidden) {
            cmd = cmd.subcommand(phase_command::<W>(child));
        }
    }
    cmd
}

impl<W: PhaseTree> Subcommand for PhaseSelection<W> {
    fn augment_subcommands(cmd: Command) -> Command {
        let mut cmd = cmd.subcommand_required(true);
        for phase in W::tree().iter().filter(|p| !p.hidden) {
            cmd = cmd.subcommand(phase_command::<W>(phase));
        }
        cmd
    }

    fn augment_subcommands_for_update(cmd: Command) -> Command {
        Self::augment_subcommands(cmd)
    }

    fn has_subcommand(name: &str) -> bool {
        W::tree().iter().any(|p| p.name == name && !p.hidden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Deep;

    impl PhaseTree for Deep {
        fn tree() -> Vec<PhaseInfo> {
            let leaf = |name| PhaseInfo {
                name,
                help: "",
                children: Vec::new(),
                hidden: false,
            };
            vec![
                leaf("a"),
                PhaseInfo {
                    hidden: true,
                    ..leaf("secret")
                },
                PhaseInfo {
                    name: "b",
                    help: "",
                    children: vec![PhaseInfo {
                        name: "deep",
                        help: "",
                        children: vec![leaf("d1"), leaf("d2")],
                        hidden: false,
                    }],
                    hidden: false,
                },
            ]
        }

        fn positional() -> Option<(&'static str, &'static str)> {
            Some(("endpoint", ""))
        }
    }

    fn select(args: &[&str]) -> PhaseSelection<Deep> {
        let cmd = PhaseSelection::<Deep>::augment_subcommands(Command::new("phase"));
        let matches = cmd
            .try_get_matches_from(std::iter::once("phase").chain(args.iter().copied()))
            .unwrap();
        PhaseSelection::<Deep>::from_arg_matches(&matches).unwrap()
    }

    #[test]
    fn subcommands_reach_every_depth_with_all_and_the_positional() {
        assert_eq!(
            select(&["b", "deep", "d2"]).target.path,
            ["b", "deep", "d2"]
        );
        assert_eq!(
            select(&["b", "deep", "all"]).target.path,
            ["b", "deep", "all"]
        );
        let with_endpoint = select(&["b", "deep", "d1", "10.0.0.1:6443"]);
        assert_eq!(with_endpoint.positional.as_deref(), Some("10.0.0.1:6443"));
        assert_eq!(select(&["a"]).target.path, ["a"]);
    }

    #[test]
    fn a_hidden_phase_has_no_subcommand() {
        let cmd = PhaseSelection::<Deep>::augment_subcommands(Command::new("phase"));
        let refused = cmd.try_get_matches_from(["phase", "secret"]);
        assert!(refused.is_err());
        assert!(!PhaseSelection::<Deep>::has_subcommand("secret"));
        assert!(PhaseSelection::<Deep>::has_subcommand("a"));
    }
}
