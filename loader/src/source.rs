//! Which files in a holdings folder are which groups, by their names.
//!
//! - ETF holdings: `{ticker}_holdings.csv` in any case, with anything between `_holdings` and
//!   `.csv` (`spy_holdings.csv`, `IVV_holdings_ishares.csv`), or SPDR's download name
//!   `holdings-daily-{region}-{lang}-{ticker}.csv`. The group is the ticker in upper case.
//! - Universes: `nasdaq100.csv`, `sp500.csv`, `dow30.csv`, `russell3000.csv`, or any
//!   `{key}_universe.csv`. The group is the key in lower case.
//!
//! Anything else (and sub-folders such as `classifications/`) is not a group file. Whatever
//! bears a group file's name is listed, whatever it is; the load rejects what is not a
//! regular file.

use std::path::{Path, PathBuf};

use entity::GroupType;

/// The universes known by their bare file names.
pub const NAMED_UNIVERSES: [&str; 4] = ["nasdaq100", "sp500", "dow30", "russell3000"];

/// A file that holds one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    pub path: PathBuf,
    /// The file name, as reports show it.
    pub file_name: String,
    pub group_type: GroupType,
    /// `SPY` for an ETF, `sp500` for a universe.
    pub group_name: String,
}

/// The group a file name stands for, if any.
pub fn classify(file_name: &str) -> Option<(GroupType, String)> {
    let lower = file_name.to_ascii_lowercase();
    let stem = lower.strip_suffix(".csv")?;
    if let Some((ticker, _)) = stem.split_once("_holdings") {
        return valid_key(ticker).then(|| (GroupType::Etf, ticker.to_ascii_uppercase()));
    }
    if let Some(rest) = stem.strip_prefix("holdings-daily-") {
        let ticker = rest.rsplit('-').next().unwrap_or("");
        return valid_key(ticker).then(|| (GroupType::Etf, ticker.to_ascii_uppercase()));
    }
    if NAMED_UNIVERSES.contains(&stem) {
        return Some((GroupType::Universe, stem.to_owned()));
    }
    if let Some(key) = stem.strip_suffix("_universe") {
        return valid_key(key).then(|| (GroupType::Universe, key.to_owned()));
    }
    None
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 32
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// Why a folder could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("holdings folder {0} does not exist")]
    Missing(PathBuf),
    #[error("cannot read holdings folder {path}: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("two files in {dir} are both group {group}: {first} and {second}")]
    Conflict {
        dir: PathBuf,
        group: String,
        first: String,
        second: String,
    },
}

/// The group files of one type in a folder, sorted by group name.
pub fn discover(dir: &Path, group_type: GroupType) -> Result<Vec<SourceFile>, SourceError> {
    if !dir.is_dir() {
        return Err(SourceError::Missing(dir.to_owned()));
    }
    let unreadable = |source| SourceError::Unreadable {
        path: dir.to_owned(),
        source,
    };
    let mut files: Vec<SourceFile> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        // Whatever bears a group file's name is that group's input, even a directory or a
        // broken link: the load rejects it and the group keeps its data, where skipping it
        // would make a full load take the group's file for gone.
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some((kind, group_name)) = classify(&file_name) else {
            continue;
        };
        if kind == group_type {
            files.push(SourceFile {
                path: entry.path(),
                file_name,
                group_type: kind,
                group_name,
            });
        }
    }
    files.sort_by(|a, b| {
        a.group_name
            .cmp(&b.group_name)
            .then(a.file_name.cmp(&b.file_name))
    });
    for pair in files.windows(2) {
        if pair[0].group_name == pair[1].group_name {
            return Err(SourceError::Conflict {
                dir: dir.to_owned(),
                group: pair[0].group_name.clone(),
                first: pair[0].file_name.clone(),
                second: pair[1].file_name.clone(),
            });
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_map_to_groups() {
        let etf = |t: &str| Some((GroupType::Etf, t.to_owned()));
        assert_eq!(classify("spy_holdings.csv"), etf("SPY"));
        assert_eq!(classify("IVV_holdings_ishares.csv"), etf("IVV"));
        assert_eq!(classify("VTI_holdings_vanguard.CSV"), etf("VTI"));
        assert_eq!(classify("holdings-daily-us-en-spy.csv"), etf("SPY"));
        assert_eq!(
            classify("sp500.csv"),
            Some((GroupType::Universe, "sp500".to_owned()))
        );
        assert_eq!(
            classify("Midcap400_universe.csv"),
            Some((GroupType::Universe, "midcap400".to_owned()))
        );
        assert_eq!(classify("notes.csv"), None);
        assert_eq!(classify("spy_holdings.txt"), None);
        assert_eq!(classify("_holdings.csv"), None);
    }
}
