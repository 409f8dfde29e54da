//! Phases as data, and the one executor that runs init, join and reset.
//!
//! A workflow is an ordered tree of [`Phase`] values of any depth. The same tree builds the
//! `<cmd> phase <name> [sub…]` subcommands ([`selection`]), validates `--skip-phases`, and drives
//! execution ([`executor`]): node lock, journal run markers, recovery of an earlier run that never
//! ended, `--dry-run`, and the rollback of a failed run ([`rollback`], with the cluster gateway's
//! API objects undone by [`cluster_undo`]) unless `--keep-on-failure`.

pub mod cluster_undo;
pub mod executor;
pub mod rollback;
pub mod selection;
pub mod session;

use std::fmt;

use anyhow::Context;

use crate::output::Ui;

pub use executor::{RunData, RunSpec, Workflow, command_line, execute};

/// A phase's work: a closure over the workflow's run data.
pub type RunFn<D> = Box<dyn Fn(&mut D) -> anyhow::Result<()>>;
/// Called after each top-level phase (the executor commits the phase's staged files there).
pub type AfterFn<D> = dyn Fn(&D) -> anyhow::Result<()>;
/// When present and false for the run data, the phase (and its children) is skipped with a notice.
pub type RunIfFn<D> = Box<dyn Fn(&D) -> bool>;

/// One step of a workflow.
pub struct Phase<D> {
    pub name: &'static str,
    pub help: &'static str,
    /// Runs before the children (e.g. a `[certs] Using certificateDir folder` line); may be absent.
    pub run: Option<RunFn<D>>,
    pub run_if: Option<RunIfFn<D>>,
    pub children: Vec<Phase<D>>,
    /// Runs with the workflow and `--skip-phases` accepts it, but it has no `phase` subcommand (kubeadm's
    /// hidden phases, such as join's `check-etcd`).
    pub hidden: bool,
}

impl<D> Phase<D> {
    /// A phase without children.
    pub fn leaf(
        name: &'static str,
        help: &'static str,
        run: impl Fn(&mut D) -> anyhow::Result<()> + 'static,
    ) -> Self {
        Phase {
            name,
            help,
            run: Some(Box::new(run)),
            run_if: None,
            children: Vec::new(),
            hidden: false,
        }
    }

    /// A phase made of sub-phases (which may have their own).
    pub fn group(name: &'static str, help: &'static str, children: Vec<Phase<D>>) -> Self {
        Phase {
            name,
            help,
            run: None,
            run_if: None,
            children,
            hidden: false,
        }
    }

    /// Work a group does before its children.
    pub fn with_run(mut self, run: impl Fn(&mut D) -> anyhow::Result<()> + 'static) -> Self {
        self.run = Some(Box::new(run));
        self
    }

    pub fn with_run_if(mut self, run_if: impl Fn(&D) -> bool + 'static) -> Self {
        self.run_if = Some(Box::new(run_if));
        self
    }

    /// Hides the phase from the `phase` subcommands (see [`Phase::hidden`]).
    pub fn hidden(mut self) -> Self {
        self.hidden = true;
        self
    }
}

/// The shape of a phase tree without its functions: what the CLI needs to build subcommands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseInfo {
    pub name: &'static str,
    pub help: &'static str,
    pub children: Vec<PhaseInfo>,
    pub hidden: bool,
}

pub fn describe<D>(phases: &[Phase<D>]) -> Vec<PhaseInfo> {
    phases
        .iter()
        .map(|p| PhaseInfo {
            name: p.name,
            help: p.help,
            children: describe(&p.children),
            hidden: p.hidden,
        })
        .collect()
}

/// Every valid `--skip-phases` entry, at any depth: `phase`, `phase/child`, `phase/child/grandchild`.
pub fn phase_paths(phases: &[PhaseInfo]) -> Vec<String> {
    fn walk(phases: &[PhaseInfo], prefix: &str, out: &mut Vec<String>) {
        for p in phases {
            let path = join_path(prefix, p.name);
            out.push(path.clone());
            walk(&p.children, &path, out);
        }
    }
    let mut out = Vec::new();
    walk(phases, "", &mut out);
    out
}

fn join_path(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

/// What to run: the whole workflow (an empty path), or one phase by its path from the top
/// (`["certs", "apiserver"]`); a last element `all` means the named group with every sub-phase.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Target {
    pub path: Vec<String>,
}

impl Target {
    pub fn whole() -> Self {
        Target::default()
    }

    pub fn phase<S: Into<String>>(path: impl IntoIterator<Item = S>) -> Self {
        Target {
            path: path.into_iter().map(Into::into).collect(),
        }
    }

    pub fn is_whole(&self) -> bool {
        self.path.is_empty()
    }

    /// The top-level phase asked for, if any.
    pub fn top(&self) -> Option<&str> {
        self.path.first().map(String::as_str)
    }
}

/// `certs apiserver`, as typed after `phase`.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path.join(" "))
    }
}

/// Runs the selected part of a phase tree. Errors carry `error execution phase <path>` context.
pub fn run<D>(
    phases: &[Phase<D>],
    data: &mut D,
    target: &Target,
    skip: &[String],
    ui: &Ui,
) -> anyhow::Result<()> {
    run_with(phases, data, target, skip, ui, &|_: &D| Ok(()))
}

/// Like [`run`], calling `after_top` after each top-level phase that ran (the executor commits the
/// phase's staged files there).
pub fn run_with<D>(
    phases: &[Phase<D>],
    data: &mut D,
    target: &Target,
    skip: &[String],
    ui: &Ui,
    after_top: &AfterFn<D>,
) -> anyhow::Result<()> {
    run_level(phases, data, &target.path, "", skip, ui, Some(after_top))
}

fn run_level<D>(
    phases: &[Phase<D>],
    data: &mut D,
    wanted: &[String],
    prefix: &str,
    skip: &[String],
    ui: &Ui,
    after: Option<&AfterFn<D>>,
) -> anyhow::Result<()> {
    let selected = wanted.first().filter(|w| *w != "all");
    for phase in phases {
        let path = join_path(prefix, phase.name);
        match selected {
            Some(name) if name != phase.name => continue,
            // A phase asked for by name runs even if also listed in --skip-phases.
            Some(_) => {}
            None => {
                if skip.iter().any(|s| s.trim() == path) {
                    ui.debug(1, format!("[{path}] Skipping phase (--skip-phases)"));
                    continue;
                }
            }
        }
        if let Some(run_if) = &phase.run_if
            && !run_if(data)
        {
            ui.debug(1, format!("[{path}] Skipping phase: not applicable"));
            continue;
        }
        if let Some(run) = &phase.run {
            run(data).with_context(|| format!("error execution phase {path}"))?;
        }
        let below = if selected.is_some() {
            &wanted[1..]
        } else {
            &[]
        };
        run_level(&phase.children, data, below, &path, skip, ui, None)?;
        if let Some(after) = after {
            after(data).with_context(|| format!("error execution phase {path}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Log(Vec<String>, bool);

    fn step(name: &'static str) -> Phase<Log> {
        Phase::leaf(name, "", move |d: &mut Log| {
            d.0.push(name.to_string());
            Ok(())
        })
    }

    fn tree() -> Vec<Phase<Log>> {
        vec![
            step("a"),
            Phase::group(
                "b",
                "second",
                vec![
                    step("x"),
                    step("y").with_run_if(|d: &Log| d.1),
                    Phase::group("deep", "", vec![step("d1"), step("d2")]).with_run(
                        |d: &mut Log| {
                            d.0.push("deep".into());
                            Ok(())
                        },
                    ),
                    Phase::leaf("z", "", |_d: &mut Log| anyhow::bail!("boom")),
                ],
            )
            .with_run(|d: &mut Log| {
                d.0.push("b".into());
                Ok(())
            }),
        ]
    }

    fn run_tree(data: &mut Log, target: &Target, skip: &[&str]) -> anyhow::Result<()> {
        let skip: Vec<String> = skip.iter().map(|s| s.to_string()).collect();
        run(&tree(), data, target, &skip, &Ui::default())
    }

    #[test]
    fn whole_workflow_in_order_with_skips_and_conditions() {
        let mut d = Log::default();
        let err = run_tree(&mut d, &Target::whole(), &["a", "b/deep/d1"]).unwrap_err();
        assert_eq!(d.0, ["b", "x", "deep", "d2"]);
        assert_eq!(err.to_string(), "error execution phase b/z");
        let mut d = Log(Vec::new(), true);
        run_tree(&mut d, &Target::whole(), &["b/z", "b/deep"]).unwrap();
        assert_eq!(d.0, ["a", "b", "x", "y"]);
    }

    #[test]
    fn one_phase_at_any_depth() {
        let mut d = Log::default();
        run_tree(&mut d, &Target::phase(["b", "x"]), &[]).unwrap();
        assert_eq!(d.0, ["b", "x"]);
        let mut d = Log::default();
        run_tree(&mut d, &Target::phase(["b", "deep", "d2"]), &[]).unwrap();
        assert_eq!(d.0, ["b", "deep", "d2"]);
        let mut d = Log::default();
        run_tree(&mut d, &Target::phase(["b", "deep", "all"]), &["b/deep/d1"]).unwrap();
        assert_eq!(d.0, ["b", "deep", "d2"]);
    }

    #[test]
    fn paths_cover_every_depth() {
        let paths = phase_paths(&describe(&tree()));
        assert_eq!(
            paths,
            [
                "a",
                "b",
                "b/x",
                "b/y",
                "b/deep",
                "b/deep/d1",
                "b/deep/d2",
                "b/z"
            ]
        );
    }
}
