//! SeaORM models of the Holdings Graph tables and the small vocabulary they share (group types,
//! change kinds). No I/O beyond what SeaORM does, nothing of HTTP or GraphQL.

pub mod data_version;
pub mod definition_group;
pub mod group_change;
pub mod group_membership;
pub mod load_run;
pub mod load_run_file;
pub mod membership_change;

use std::fmt;
use std::str::FromStr;

/// The kind of a definition group, stored as text in `definition_groups.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupType {
    /// An exchange-traded fund; its memberships carry weights.
    Etf,
    /// A GICS sector (or `unknown`); each stock belongs to exactly one.
    Sector,
    /// An investment theme chosen by hand.
    Theme,
    /// An index universe such as the S&P 500; members have no weight.
    Universe,
}

impl GroupType {
    /// Every group type, in display order.
    pub const ALL: [GroupType; 4] = [Self::Etf, Self::Sector, Self::Theme, Self::Universe];

    /// The value stored in the `type` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Etf => "ETF",
            Self::Sector => "SECTOR",
            Self::Theme => "THEME",
            Self::Universe => "UNIVERSE",
        }
    }
}

impl serde::Serialize for GroupType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for GroupType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `type` value that is not one of the four group types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownGroupType(pub String);

impl fmt::Display for UnknownGroupType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown group type {:?} (expected ETF, SECTOR, THEME or UNIVERSE)",
            self.0
        )
    }
}

impl std::error::Error for UnknownGroupType {}

impl FromStr for GroupType {
    type Err = UnknownGroupType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "ETF" => Ok(Self::Etf),
            "SECTOR" => Ok(Self::Sector),
            "THEME" => Ok(Self::Theme),
            "UNIVERSE" => Ok(Self::Universe),
            _ => Err(UnknownGroupType(s.to_owned())),
        }
    }
}

/// What a load did to one membership, stored in `membership_changes.change`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// The symbol joined the group.
    Added,
    /// The symbol left the group.
    Removed,
    /// The symbol stayed with another weight (its metadata may have changed too).
    Reweighted,
    /// The symbol stayed with the same weight; only its metadata changed.
    Updated,
}

impl ChangeKind {
    /// The value stored in the `change` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Removed => "removed",
            Self::Reweighted => "reweighted",
            Self::Updated => "updated",
        }
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ChangeKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A stored `change` value that is not one of the kinds of change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownChangeKind(pub String);

impl fmt::Display for UnknownChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown change kind {:?}", self.0)
    }
}

impl std::error::Error for UnknownChangeKind {}

impl FromStr for ChangeKind {
    type Err = UnknownChangeKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "added" => Ok(Self::Added),
            "removed" => Ok(Self::Removed),
            "reweighted" => Ok(Self::Reweighted),
            "updated" => Ok(Self::Updated),
            _ => Err(UnknownChangeKind(s.to_owned())),
        }
    }
}

/// What a run did to a group itself, stored in `group_changes.change`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupChangeKind {
    /// The group was made.
    Created,
    /// Its description or metadata changed.
    Updated,
    /// The group was removed (with its members, recorded as `removed` membership changes).
    Removed,
}

impl GroupChangeKind {
    /// The value stored in the `change` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Removed => "removed",
        }
    }
}

impl fmt::Display for GroupChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for GroupChangeKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl FromStr for GroupChangeKind {
    type Err = UnknownChangeKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "created" => Ok(Self::Created),
            "updated" => Ok(Self::Updated),
            "removed" => Ok(Self::Removed),
            _ => Err(UnknownChangeKind(s.to_owned())),
        }
    }
}
