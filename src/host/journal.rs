//! The journal of side effects under `<root>/var/lib/kubestrap/journal.jsonl`: format, writer and reader.
//!
//! One JSON object per line. Every entry is appended (and synced) *before* the side effect happens,
//! so a crash leaves a record of what may have been done; undoing an entry whose effect never
//! happened is a no-op. `reset` undoes every run's file entries in reverse (it never flips live kernel
//! values back); a failed `init`/`join` (or the next one, after a crash) undoes its own run, `set-sysctl`
//! and `api-object` entries included (`workflow::rollback`).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::paths::{NodePath, Root, well_known};

pub const JOURNAL_FILE: &str = "journal.jsonl";

/// What a file looked like before the tool wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Prior {
    /// The file did not exist: undo deletes it.
    Absent,
    /// The file existed and was copied here first: undo restores it.
    Backup { path: NodePath },
}

/// What the cluster gateway did to an API object, and what undoing it takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum ApiChange {
    /// The object did not exist: undo deletes it.
    Created,
    /// The object existed and was changed; its earlier copy was saved at `backup` (0600: it may
    /// be a Secret): undo puts that copy back.
    Updated { backup: NodePath },
    /// The object existed and was deleted; undo re-creates it from `backup`.
    Deleted { backup: NodePath },
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Succeeded,
    Failed,
    RolledBack,
}

/// One side effect (or run boundary).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Entry {
    RunStart {
        command: String,
        pid: u32,
    },
    RunEnd {
        outcome: Outcome,
    },
    MakeDir {
        path: NodePath,
        mode: u32,
    },
    WriteFile {
        path: NodePath,
        mode: u32,
        prior: Prior,
    },
    /// A live kernel parameter set by the run; undo writes `prior` back.
    SetSysctl {
        key: String,
        value: String,
        prior: String,
    },
    /// A non-file artefact (link, unit, rule…) recorded by a host subsystem; the
    /// subsystem named by `kind` knows how to undo it.
    Artefact {
        kind: String,
        target: String,
        #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
        detail: serde_json::Value,
    },
    /// An object in the cluster, changed through the cluster gateway (`crate::cluster`), which
    /// undoes it.
    ApiObject {
        #[serde(rename = "apiVersion")]
        api_version: String,
        kind: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        name: String,
        change: ApiChange,
    },
}

impl Entry {
    /// The target and detail of an `Artefact` entry of `kind`; `None` for any other entry (how an
    /// [`UndoEntry`](crate::workflow::rollback::UndoEntry) handler picks out its own entries).
    pub fn artefact(&self, kind: &str) -> Option<(&str, &serde_json::Value)> {
        match self {
            Entry::Artefact {
                kind: own,
                target,
                detail,
            } if own == kind => Some((target, detail)),
            _ => None,
        }
    }
}

/// A journal line: an entry stamped with its run, sequence number and time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub run: String,
    pub seq: u64,
    pub time: String,
    #[serde(flatten)]
    pub entry: Entry,
}

/// The journal's directory on disk.
pub fn state_dir(root: &Root) -> PathBuf {
    root.disk(&NodePath::new(well_known::STATE_DIR))
}

pub fn journal_path(root: &Root) -> PathBuf {
    state_dir(root).join(JOURNAL_FILE)
}

/// Appends records for one run.
#[derive(Debug)]
pub struct JournalWriter {
    file: File,
    run: String,
    seq: u64,
}

impl JournalWriter {
    /// Opens (creating if needed) the journal and writes the run's start record.
    pub fn start(root: &Root, command: &str) -> anyhow::Result<Self> {
        let dir = state_dir(root);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(JOURNAL_FILE);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening journal {}", path.display()))?;
        let mut writer = JournalWriter {
            file,
            run: new_run_id(),
            seq: 0,
        };
        // Durable with the run's first effect: every effect syncs the journal before it happens.
        writer.append_deferred(Entry::RunStart {
            command: command.to_string(),
            pid: std::process::id(),
        })?;
        Ok(writer)
    }

    pub fn run_id(&self) -> &str {
        &self.run
    }

    /// Appends an entry and syncs it: durable before the caller's effect.
    pub fn append(&mut self, entry: Entry) -> anyhow::Result<()> {
        self.append_deferred(entry)?;
        self.sync()
    }

    /// Appends an entry without syncing it: the caller makes it durable with the batch of effects it
    /// belongs to, before any of them is put in place (`super::durable`).
    pub fn append_deferred(&mut self, entry: Entry) -> anyhow::Result<()> {
        self.seq += 1;
        let record = Record {
            run: self.run.clone(),
            seq: self.seq,
            time: now_rfc3339(),
            entry,
        };
        self.write(&record)
    }

    pub fn sync(&mut self) -> anyhow::Result<()> {
        self.file.sync_data().context("syncing the journal")
    }

    /// The journal file, for syncing together with a batch of files.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Ends an earlier run that never ended (its process died), after its effects were undone.
    pub fn end_earlier_run(&mut self, run: &UnfinishedRun, outcome: Outcome) -> anyhow::Result<()> {
        self.write(&Record {
            run: run.run.clone(),
            seq: run.last_seq + 1,
            time: now_rfc3339(),
            entry: Entry::RunEnd { outcome },
        })?;
        self.sync()
    }

    fn write(&mut self, record: &Record) -> anyhow::Result<()> {
        let mut line = serde_json::to_string(record)?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .context("appending to the journal")?;
        Ok(())
    }
}

/// Reads every record. A torn last line (a crash mid-append) is skipped; any other bad line is an error.
pub fn read(root: &Root) -> anyhow::Result<Vec<Record>> {
    read_file(&journal_path(root))
}

pub fn read_file(path: &Path) -> anyhow::Result<Vec<Record>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("opening journal {}", path.display())),
    };
    let lines: Vec<String> = BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading journal {}", path.display()))?;
    let mut records = Vec::with_capacity(lines.len());
    let last = lines.len().saturating_sub(1);
    for (index, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(line) {
            Ok(r) => records.push(r),
            Err(_) if index == last => break,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("journal {} line {}", path.display(), index + 1));
            }
        }
    }
    Ok(records)
}

/// A run whose start is journaled but whose end is not: its process died (or still runs, which the
/// node lock rules out for whoever holds the lock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnfinishedRun {
    pub run: String,
    pub command: String,
    pub pid: u32,
    pub started: String,
    pub last_seq: u64,
}

/// The records whose effects still stand: every run's but those of runs already rolled back (their
/// undo ran, and a backup it restored is gone, so undoing them again would fail).
pub fn standing(records: Vec<Record>) -> Vec<Record> {
    let rolled_back: std::collections::HashSet<String> = records
        .iter()
        .filter(|r| {
            matches!(
                r.entry,
                Entry::RunEnd {
                    outcome: Outcome::RolledBack
                }
            )
        })
        .map(|r| r.run.clone())
        .collect();
    records
        .into_iter()
        .filter(|r| !rolled_back.contains(&r.run))
        .collect()
}

/// The runs that started and never ended, oldest first.
pub fn unfinished_runs(records: &[Record]) -> Vec<UnfinishedRun> {
    let mut open: Vec<UnfinishedRun> = Vec::new();
    for record in records {
        match &record.entry {
            Entry::RunStart { command, pid } => open.push(UnfinishedRun {
                run: record.run.clone(),
                command: command.clone(),
                pid: *pid,
                started: record.time.clone(),
                last_seq: record.seq,
            }),
            Entry::RunEnd { .. } => open.retain(|r| r.run != record.run),
            _ => {
                if let Some(run) = open.iter_mut().find(|r| r.run == record.run) {
                    run.last_seq = run.last_seq.max(record.seq);
                }
            }
        }
    }
    open
}

/// The records of one run, in the order they were written.
pub fn run_records<'a>(records: &'a [Record], run: &str) -> Vec<&'a Record> {
    records.iter().filter(|r| r.run == run).collect()
}

fn new_run_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    let stamp = now
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_else(|_| now.unix_timestamp().to_string());
    format!("{stamp}-{}-{:09}", std::process::id(), now.nanosecond())
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_records_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let mut w = JournalWriter::start(&root, "init").unwrap();
        w.append(Entry::MakeDir {
            path: NodePath::new("/etc/kubernetes"),
            mode: 0o755,
        })
        .unwrap();
        w.append(Entry::WriteFile {
            path: NodePath::new("/etc/kubernetes/admin.conf"),
            mode: 0o600,
            prior: Prior::Absent,
        })
        .unwrap();
        let records = read(&root).unwrap();
        assert_eq!(records.len(), 3);
        assert!(matches!(records[0].entry, Entry::RunStart { .. }));
        assert_eq!(records[2].seq, 3);
        assert!(records.iter().all(|r| r.run == w.run_id()));
    }

    #[test]
    fn a_rolled_back_run_has_no_standing_effects() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let file = |path: &str| Entry::WriteFile {
            path: NodePath::new(path),
            mode: 0o644,
            prior: Prior::Absent,
        };
        let mut killed = JournalWriter::start(&root, "init").unwrap();
        killed.append(file("/etc/kubernetes/a.conf")).unwrap();
        let unfinished = unfinished_runs(&read(&root).unwrap());
        drop(killed);
        let mut next = JournalWriter::start(&root, "init").unwrap();
        next.end_earlier_run(&unfinished[0], Outcome::RolledBack)
            .unwrap();
        next.append(file("/etc/kubernetes/b.conf")).unwrap();
        next.append(Entry::RunEnd {
            outcome: Outcome::Succeeded,
        })
        .unwrap();
        let standing = standing(read(&root).unwrap());
        assert!(standing.iter().all(|r| r.run == next.run_id()));
        assert!(
            standing
                .iter()
                .any(|r| r.entry == file("/etc/kubernetes/b.conf"))
        );
        assert!(
            !standing
                .iter()
                .any(|r| r.entry == file("/etc/kubernetes/a.conf"))
        );
    }

    #[test]
    fn torn_last_line_is_ignored_but_corruption_elsewhere_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let mut w = JournalWriter::start(&root, "init").unwrap();
        w.append(Entry::RunEnd {
            outcome: Outcome::Succeeded,
        })
        .unwrap();
        let path = journal_path(&root);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"run\":\"x\",\"se");
        std::fs::write(&path, &text).unwrap();
        assert_eq!(read(&root).unwrap().len(), 2);
        std::fs::write(&path, format!("garbage\n{text}")).unwrap();
        assert!(read(&root).is_err());
    }

    #[test]
    fn a_run_without_an_end_is_unfinished_until_ended() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let mut done = JournalWriter::start(&root, "init").unwrap();
        done.append(Entry::RunEnd {
            outcome: Outcome::Succeeded,
        })
        .unwrap();
        let mut killed = JournalWriter::start(&root, "init phase certs").unwrap();
        killed
            .append(Entry::MakeDir {
                path: NodePath::new("/etc/kubernetes"),
                mode: 0o755,
            })
            .unwrap();
        let unfinished = unfinished_runs(&read(&root).unwrap());
        assert_eq!(unfinished.len(), 1);
        assert_eq!(unfinished[0].run, killed.run_id());
        assert_eq!(unfinished[0].command, "init phase certs");
        assert_eq!(unfinished[0].last_seq, 2);
        let mut next = JournalWriter::start(&root, "init").unwrap();
        next.end_earlier_run(&unfinished[0], Outcome::RolledBack)
            .unwrap();
        let unfinished = unfinished_runs(&read(&root).unwrap());
        assert_eq!(unfinished.len(), 1);
        assert_eq!(unfinished[0].run, next.run_id());
    }

    #[test]
    fn api_object_entries_round_trip_with_their_change() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let mut w = JournalWriter::start(&root, "init").unwrap();
        let created = Entry::ApiObject {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("kube-system".into()),
            name: "kubeadm-config".into(),
            change: ApiChange::Created,
        };
        let updated = Entry::ApiObject {
            api_version: "rbac.authorization.k8s.io/v1".into(),
            kind: "ClusterRole".into(),
            namespace: None,
            name: "system:coredns".into(),
            change: ApiChange::Updated {
                backup: NodePath::new("/var/lib/kubestrap/backups/r/api/x.json"),
            },
        };
        w.append(created.clone()).unwrap();
        w.append(updated.clone()).unwrap();
        let text = std::fs::read_to_string(journal_path(&root)).unwrap();
        let line = text.lines().nth(1).unwrap();
        assert!(
            line.contains(r#""op":"api-object","apiVersion":"v1","kind":"ConfigMap","namespace":"kube-system","name":"kubeadm-config","change":{"state":"created"}"#),
            "{line}"
        );
        let records = read(&root).unwrap();
        assert_eq!(records[1].entry, created);
        assert_eq!(records[2].entry, updated);
    }

    #[test]
    fn missing_journal_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(&Root::new(dir.path())).unwrap().is_empty());
    }
}
