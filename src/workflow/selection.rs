//! `<command> phase <name> [sub]` subcommands, generated from a workflow's phase tree.

use std::marker::PhantomData;

use clap::{ArgMatches, Command, FromArgMatches, Subcommand, error::ErrorKind};

use super::{PhaseInfo, Target};

/// A workflow whose phase tree the CLI can describe without running anything.
pub trait PhaseTree {
    fn tree() -> Vec<PhaseInfo>;
}

/// The phase (and optional sub-phase) picked on the command line.
#[derive(Debug, Clone)]
pub struct PhaseSelection<W> {
    pub target: Target,
    _tree: PhantomData<W>,
}

impl<W> PhaseSelection<W> {
    pub fn new(target: Target) -> Self {
        PhaseSelection {
            target,
            _tree: PhantomData,
        }
    }
}

impl<W: PhaseTree> FromArgMatches for PhaseSelection<W> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        match matches.subcommand() {
            Some((name, sub)) => Ok(PhaseSelection::new(Target {
                phase: Some(name.to_string()),
                child: sub.subcommand_name().map(str::to_string),
            })),
            None => Err(clap::Error::raw(
                ErrorKind::MissingSubcommand,
                "a phase name is required\n",
            )),
        }
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl<W: PhaseTree> Subcommand for PhaseSelection<W> {
    fn augment_subcommands(cmd: Command) -> Command {
        let mut cmd = cmd.subcommand_required(true);
        for phase in W::tree() {
            let mut sub = Command::new(phase.name).about(phase.help);
            if !phase.children.is_empty() {
                sub = sub.subcommand(
                    Command::new("all").about(format!("Run every {} sub-phase", phase.name)),
                );
                for child in phase.children {
                    sub = sub.subcommand(Command::new(child.name).about(child.help));
                }
            }
            cmd = cmd.subcommand(sub);
        }
        cmd
    }

    fn augment_subcommands_for_update(cmd: Command) -> Command {
        Self::augment_subcommands(cmd)
    }

    fn has_subcommand(name: &str) -> bool {
        W::tree().iter().any(|p| p.name == name)
    }
}
