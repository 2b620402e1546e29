//! The load report: computed once by the run, stored with it as JSON, printed by the CLI and
//! returned by the GraphQL mutations, so the numbers cannot disagree.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use entity::GroupType;
use serde::Serialize;

use crate::read::{SkipReason, Skipped};

/// How a load treats what is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The stored groups of the type become exactly what the files say.
    Full,
    /// Files whose MD5 is unchanged are skipped; changed ones are diffed row by row.
    Incremental,
    /// The full diff is computed and printed; nothing is written.
    DryRun,
}

impl Mode {
    /// The name used on the command line and in `load_runs.mode`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Incremental => "incremental",
            Self::DryRun => "dry-run",
        }
    }
}

/// What happened to one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// Read and applied (possibly with no change).
    Loaded,
    /// Skipped by an incremental load: its MD5 matches the last successful load.
    Unchanged,
    /// Could not be read as holdings (or mostly bad rows); its group kept its previous data.
    Rejected,
    /// Read, but a guard held it back (it would replace most of the group or move its total
    /// weight); its group kept its previous data. `--force` applies it.
    HeldBack,
}

impl FileStatus {
    /// The value stored in `load_run_files.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Loaded => "loaded",
            Self::Unchanged => "unchanged",
            Self::Rejected => "rejected",
            Self::HeldBack => "held_back",
        }
    }
}

/// Counts of membership changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub created: usize,
    pub updated: usize,
    pub reweighted: usize,
    pub deleted: usize,
    pub unchanged: usize,
}

impl Counts {
    /// What applying `diff` changes.
    pub fn of(diff: &crate::diff::GroupDiff) -> Self {
        Self {
            created: diff.added.len(),
            updated: diff.updated.len(),
            reweighted: diff.reweighted(),
            deleted: diff.removed.len(),
            unchanged: diff.unchanged,
        }
    }

    fn add(&mut self, other: &Counts) {
        self.created += other.created;
        self.updated += other.updated;
        self.reweighted += other.reweighted;
        self.deleted += other.deleted;
        self.unchanged += other.unchanged;
    }
}

/// One file's part of a load.
#[derive(Clone, Debug, Serialize)]
pub struct FileReport {
    pub file_name: String,
    pub group_type: GroupType,
    pub group_name: String,
    pub status: FileStatus,
    pub md5: String,
    /// The shape recognised (`canonical`, `ishares`, ...), when the file was read.
    pub shape: Option<&'static str>,
    pub description: Option<String>,
    /// Rows after the header (and title lines before it), each loaded or skipped.
    pub rows_read: usize,
    /// Distinct memberships the file asks for.
    pub holdings: usize,
    pub counts: Counts,
    pub skipped_by_reason: BTreeMap<SkipReason, usize>,
    pub skipped: Vec<Skipped>,
    /// Why the file was rejected, with its file name and line.
    pub error: Option<String>,
    /// The line of the file a rejection names, when it names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The guard that rejected or held back the file, with its figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard: Option<crate::guard::Tripped>,
}

impl FileReport {
    /// Rows skipped, all reasons together.
    pub fn skipped_total(&self) -> usize {
        self.skipped_by_reason.values().sum()
    }
}

/// A group a full load removed because its file is gone.
#[derive(Clone, Debug, Serialize)]
pub struct RemovedGroup {
    pub group_name: String,
    pub members: usize,
}

/// The whole report of one load.
#[derive(Clone, Debug, Serialize)]
pub struct LoadReport {
    pub group_type: GroupType,
    /// The run made, or shown by a dry run: `full` or `incremental`.
    pub mode: Mode,
    /// Whether this was a dry run (nothing written).
    pub dry_run: bool,
    pub environment: String,
    pub source: String,
    pub scope: Option<String>,
    /// The run recorded, unless this was a dry run.
    pub run_id: Option<i32>,
    /// The data version committed, when the load changed anything.
    pub data_version: Option<i64>,
    pub files: Vec<FileReport>,
    pub removed_groups: Vec<RemovedGroup>,
    /// Groups whose file is gone but which an incremental load keeps.
    pub missing_files: Vec<String>,
    pub totals: Totals,
    pub elapsed_ms: f64,
}

/// Totals over every file of a load.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    pub files: usize,
    pub files_loaded: usize,
    pub files_unchanged: usize,
    pub files_rejected: usize,
    pub files_held_back: usize,
    pub rows_read: usize,
    pub holdings: usize,
    pub counts: Counts,
    pub skipped: usize,
    pub skipped_by_reason: BTreeMap<SkipReason, usize>,
    pub groups_removed: usize,
}

impl LoadReport {
    /// Whether any file was rejected or held back (the command then exits non-zero).
    pub fn failed(&self) -> bool {
        self.totals.files_rejected + self.totals.files_held_back > 0
    }

    /// The run's final state: `succeeded` (every input applied or unchanged), `partial` (some
    /// rejected or held back, the rest applied), `rejected` (none applied).
    pub fn state(&self) -> &'static str {
        let t = &self.totals;
        if !self.failed() {
            "succeeded"
        } else if t.files_loaded > 0 || t.groups_removed > 0 {
            "partial"
        } else {
            "rejected"
        }
    }

    /// Recomputes the totals from the files.
    pub(crate) fn total(&mut self) {
        let mut t = Totals {
            files: self.files.len(),
            groups_removed: self.removed_groups.len(),
            ..Totals::default()
        };
        for f in &self.files {
            match f.status {
                FileStatus::Loaded => t.files_loaded += 1,
                FileStatus::Unchanged => t.files_unchanged += 1,
                FileStatus::Rejected => t.files_rejected += 1,
                FileStatus::HeldBack => t.files_held_back += 1,
            }
            t.rows_read += f.rows_read;
            t.holdings += f.holdings;
            t.counts.add(&f.counts);
            for (reason, n) in &f.skipped_by_reason {
                *t.skipped_by_reason.entry(*reason).or_default() += n;
                t.skipped += n;
            }
        }
        for removed in &self.removed_groups {
            t.counts.deleted += removed.members;
        }
        self.totals = t;
    }

    /// The report as the CLI prints it; `verbose` lists every skipped row with its line.
    pub fn render(&self, verbose: bool) -> String {
        let mut out = String::new();
        let kind = kind_label(self.group_type);
        let noun = if self.group_type == GroupType::Etf {
            "holdings"
        } else {
            "members"
        };
        let unit = if matches!(self.group_type, GroupType::Etf | GroupType::Universe) {
            "files"
        } else {
            "groups"
        };
        let dry = self.dry_run;
        for f in &self.files {
            let counts = &f.counts;
            let changes = format!(
                "{} created, {} updated ({} reweighted), {} deleted, {} unchanged",
                counts.created, counts.updated, counts.reweighted, counts.deleted, counts.unchanged
            );
            let _ = match f.status {
                FileStatus::Rejected => writeln!(
                    out,
                    "REJECTED {kind}: {} — {}",
                    f.group_name,
                    f.error.as_deref().unwrap_or("rejected")
                ),
                FileStatus::HeldBack => writeln!(
                    out,
                    "{}HELD BACK {kind}: {} — {}",
                    if dry { "[DRY RUN] " } else { "" },
                    f.group_name,
                    f.error.as_deref().unwrap_or("held back")
                ),
                FileStatus::Unchanged => writeln!(
                    out,
                    "Unchanged {kind}: {} ({} is as at its last load; skipped)",
                    f.group_name, f.file_name
                ),
                FileStatus::Loaded if dry => writeln!(
                    out,
                    "[DRY RUN] Would load {kind}: {} ({} {noun}): {changes}",
                    f.group_name, f.holdings
                ),
                FileStatus::Loaded => writeln!(
                    out,
                    "Loaded {kind}: {} ({} {noun}{}): {changes}",
                    f.group_name,
                    f.holdings,
                    f.shape
                        .filter(|_| matches!(self.group_type, GroupType::Etf | GroupType::Universe))
                        .map(|s| format!(", {s}"))
                        .unwrap_or_default()
                ),
            };
            if f.skipped_total() > 0 {
                let _ = writeln!(
                    out,
                    "    skipped {} rows of {}: {}",
                    f.skipped_total(),
                    f.file_name,
                    reasons(&f.skipped_by_reason)
                );
            }
            if verbose {
                for s in &f.skipped {
                    let _ = writeln!(
                        out,
                        "      {}:{} {} {}",
                        f.file_name,
                        s.line,
                        s.reason.as_str(),
                        s.detail
                    );
                }
            }
        }
        for removed in &self.removed_groups {
            let verb = if dry {
                "[DRY RUN] Would remove"
            } else {
                "Removed"
            };
            let _ = writeln!(
                out,
                "{verb} {kind}: {} (its file is gone; {} holdings)",
                removed.group_name, removed.members
            );
        }
        for name in &self.missing_files {
            let _ = writeln!(
                out,
                "Kept {kind}: {name} (its file is gone; a full load would remove it)"
            );
        }
        let t = &self.totals;
        let _ = writeln!(
            out,
            "{}{} {unit}: {} loaded, {} unchanged, {} rejected; {} rows read, {} {noun}; \
             {} created, {} updated ({} reweighted), {} deleted, {} unchanged; {} skipped ({}){}",
            if dry { "[DRY RUN] " } else { "" },
            t.files,
            t.files_loaded,
            t.files_unchanged,
            t.files_rejected + t.files_held_back,
            t.rows_read,
            t.holdings,
            t.counts.created,
            t.counts.updated,
            t.counts.reweighted,
            t.counts.deleted,
            t.counts.unchanged,
            t.skipped,
            reasons(&t.skipped_by_reason),
            if t.groups_removed > 0 {
                format!("; {} groups removed", t.groups_removed)
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            out,
            "{} in {:.1} ms{}",
            if dry {
                "Nothing written (dry run)".to_owned()
            } else {
                match self.run_id {
                    Some(id) => format!("Run #{id} recorded"),
                    None => "No run recorded".to_owned(),
                }
            },
            self.elapsed_ms,
            self.data_version
                .map(|v| format!(", data version {v}"))
                .unwrap_or_default()
        );
        out
    }
}

fn kind_label(group_type: GroupType) -> &'static str {
    match group_type {
        GroupType::Etf => "ETF",
        GroupType::Universe => "universe",
        GroupType::Sector => "sector",
        GroupType::Theme => "theme",
    }
}

fn reasons(by_reason: &BTreeMap<SkipReason, usize>) -> String {
    if by_reason.is_empty() {
        return "none".to_owned();
    }
    by_reason
        .iter()
        .map(|(r, n)| format!("{} {n}", r.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}
