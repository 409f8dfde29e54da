//! Phases as data and the runner that executes them: whole workflows, one phase, `--skip-phases`.
//!
//! A workflow (init, join, reset) is an ordered list of [`Phase`] values. The same list builds
//! the `<cmd> phase <name> [sub]` subcommands (see [`selection`]), validates `--skip-phases`, and
//! drives execution. A phase with children gets an implicit `all` child.

pub mod selection;

use anyhow::Context;

use crate::output::Ui;

pub type RunFn<D> = fn(&mut D) -> anyhow::Result<()>;
pub type RunIfFn<D> = fn(&D) -> bool;

/// One step of a workflow.
pub struct Phase<D> {
    pub name: &'static str,
    pub help: &'static str,
    /// Runs before the children (e.g. a `[certs] Using certificateDir folder` line); may be absent.
    pub run: Option<RunFn<D>>,
    /// When present and false, the phase (and its children) is skipped with a notice.
    pub run_if: Option<RunIfFn<D>>,
    pub children: Vec<Phase<D>>,
}

impl<D> Phase<D> {
    pub fn leaf(name: &'static str, help: &'static str, run: RunFn<D>) -> Self {
        Phase {
            name,
            help,
            run: Some(run),
            run_if: None,
            children: Vec::new(),
        }
    }

    pub fn group(
        name: &'static str,
        help: &'static str,
        run: Option<RunFn<D>>,
        children: Vec<Phase<D>>,
    ) -> Self {
        Phase {
            name,
            help,
            run,
            run_if: None,
            children,
        }
    }

    pub fn with_run_if(mut self, run_if: RunIfFn<D>) -> Self {
        self.run_if = Some(run_if);
        self
    }
}

/// The shape of a phase tree without its functions: what the CLI needs to build subcommands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseInfo {
    pub name: &'static str,
    pub help: &'static str,
    pub children: Vec<PhaseInfo>,
}

pub fn describe<D>(phases: &[Phase<D>]) -> Vec<PhaseInfo> {
    phases
        .iter()
        .map(|p| PhaseInfo {
            name: p.name,
            help: p.help,
            children: describe(&p.children),
        })
        .collect()
}

/// Every valid `--skip-phases` entry: `phase` and `phase/child`.
pub fn phase_paths(phases: &[PhaseInfo]) -> Vec<String> {
    let mut out = Vec::new();
    for p in phases {
        out.push(p.name.to_string());
        for c in &p.children {
            out.push(format!("{}/{}", p.name, c.name));
        }
    }
    out
}

/// Checks `--skip-phases` entries against the tree; unknown ones are named.
pub fn validate_skip_list(
    phases: &[PhaseInfo],
    skip: &[String],
) -> Result<(), crate::error::InvalidInput> {
    let known = phase_paths(phases);
    let errors = skip
        .iter()
        .filter(|s| !known.iter().any(|k| k == s.trim()))
        .map(|s| {
            crate::error::FieldError::new(
                "--skip-phases",
                s,
                format!("not a phase of this command (phases: {})", known.join(", ")),
            )
        })
        .collect();
    crate::error::InvalidInput::check(errors)
}

/// What to run: the whole workflow, or one phase (optionally one child of it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Target {
    pub phase: Option<String>,
    pub child: Option<String>,
}

/// Runs the selected part of a workflow. Errors carry `error execution phase <path>` context.
pub fn run<D>(
    phases: &[Phase<D>],
    data: &mut D,
    target: &Target,
    skip: &[String],
    ui: &Ui,
) -> anyhow::Result<()> {
    let skipped = |path: &str| skip.iter().any(|s| s.trim() == path);
    for phase in phases {
        if let Some(wanted) = &target.phase
            && wanted != phase.name
        {
            continue;
        }
        // A phase asked for by name runs even if also listed in --skip-phases.
        if target.phase.is_none() && skipped(phase.name) {
            ui.debug(
                1,
                format!("[{}] Skipping phase (--skip-phases)", phase.name),
            );
            continue;
        }
        if let Some(run_if) = phase.run_if
            && !run_if(data)
        {
            ui.debug(
                1,
                format!("[{}] Skipping phase: not applicable", phase.name),
            );
            continue;
        }
        if let Some(run) = phase.run {
            run(data).with_context(|| format!("error execution phase {}", phase.name))?;
        }
        let only_child = target.child.as_deref().filter(|c| *c != "all");
        for child in &phase.children {
            let path = format!("{}/{}", phase.name, child.name);
            match only_child {
                Some(c) if c != child.name => continue,
                Some(_) => {}
                None => {
                    if skipped(&path) {
                        ui.debug(1, format!("[{path}] Skipping phase (--skip-phases)"));
                        continue;
                    }
                }
            }
            if let Some(run_if) = child.run_if
                && !run_if(data)
            {
                ui.debug(1, format!("[{path}] Skipping phase: not applicable"));
                continue;
            }
            if let Some(run) = child.run {
                run(data).with_context(|| format!("error execution phase {path}"))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Log(Vec<&'static str>, bool);

    fn tree() -> Vec<Phase<Log>> {
        vec![
            Phase::leaf("a", "first", |d: &mut Log| {
                d.0.push("a");
                Ok(())
            }),
            Phase::group(
                "b",
                "second",
                Some(|d: &mut Log| {
                    d.0.push("b");
                    Ok(())
                }),
                vec![
                    Phase::leaf("x", "", |d: &mut Log| {
                        d.0.push("b/x");
                        Ok(())
                    }),
                    Phase::leaf("y", "", |d: &mut Log| {
                        d.0.push("b/y");
                        Ok(())
                    })
                    .with_run_if(|d: &Log| d.1),
                    Phase::leaf("z", "", |_d: &mut Log| anyhow::bail!("boom")),
                ],
            ),
        ]
    }

    #[test]
    fn whole_workflow_in_order_with_skips_and_conditions() {
        let mut d = Log::default();
        let err = run(
            &tree(),
            &mut d,
            &Target::default(),
            &["a".into()],
            &Ui::default(),
        )
        .unwrap_err();
        assert_eq!(d.0, vec!["b", "b/x"]);
        assert_eq!(err.to_string(), "error execution phase b/z");
        let mut d = Log(Vec::new(), true);
        run(
            &tree(),
            &mut d,
            &Target::default(),
            &["b/z".into()],
            &Ui::default(),
        )
        .unwrap();
        assert_eq!(d.0, vec!["a", "b", "b/x", "b/y"]);
    }

    #[test]
    fn one_phase_or_one_child() {
        let mut d = Log::default();
        let target = Target {
            phase: Some("b".into()),
            child: Some("x".into()),
        };
        run(&tree(), &mut d, &target, &[], &Ui::default()).unwrap();
        assert_eq!(d.0, vec!["b", "b/x"]);
    }

    #[test]
    fn skip_list_is_checked_against_the_tree() {
        let info = describe(&tree());
        assert!(validate_skip_list(&info, &["b/x".into(), "a".into()]).is_ok());
        let err = validate_skip_list(&info, &["c".into()]).unwrap_err();
        assert_eq!(err.errors[0].value, "c");
    }
}
