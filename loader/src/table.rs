//! The tables reports print, on the console or in Markdown: numbers right-aligned with one
//! precision per column, and columns that are empty in every row left out. Every table the
//! CLI prints is built here, so they all read alike and none repeats the rules.

use std::fmt;

use comfy_table::{CellAlignment, presets::UTF8_FULL_CONDENSED};

/// What a column holds, which decides how its cells are aligned and written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Text, left-aligned.
    Text,
    /// Integers, right-aligned.
    Count,
    /// Decimals, right-aligned, every cell with the same number of places: `fewest` when that
    /// shows every value of the column exactly, otherwise `most` (rounded).
    Decimal { fewest: usize, most: usize },
}

impl Kind {
    /// Weights in percent: 2 places when every weight of the column has at most 2, else 4.
    pub const WEIGHT: Kind = Kind::Decimal { fewest: 2, most: 4 };
    /// Shares of a whole in percent: always 2 places.
    pub const PERCENT: Kind = Kind::Decimal { fewest: 2, most: 2 };

    fn is_numeric(self) -> bool {
        self != Kind::Text
    }
}

/// One cell. Numbers are kept as numbers so their column decides how they are written.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// Nothing to show (a missing weight, a stock without an industry).
    Empty,
    Text(String),
    Count(i64),
    Number(f64),
}

impl Cell {
    fn is_empty(&self) -> bool {
        match self {
            Cell::Empty => true,
            Cell::Text(text) => text.is_empty(),
            Cell::Count(_) | Cell::Number(_) => false,
        }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Cell::Text(text.to_owned())
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell::Text(text)
    }
}

impl From<&String> for Cell {
    fn from(text: &String) -> Self {
        Cell::Text(text.clone())
    }
}

impl From<i64> for Cell {
    fn from(n: i64) -> Self {
        Cell::Count(n)
    }
}

impl From<usize> for Cell {
    fn from(n: usize) -> Self {
        Cell::Count(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<f64> for Cell {
    fn from(x: f64) -> Self {
        Cell::Number(x)
    }
}

impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(value: Option<T>) -> Self {
        value.map_or(Cell::Empty, Into::into)
    }
}

/// A table under construction: columns with their kinds, then rows of cells. It prints as a
/// console table (`Display`) or as Markdown ([`Table::to_markdown`]).
#[derive(Clone, Debug)]
pub struct Table {
    columns: Vec<(String, Kind)>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    /// A table with these columns (header and kind) and no rows.
    pub fn new<S: Into<String>>(columns: impl IntoIterator<Item = (S, Kind)>) -> Self {
        Self {
            columns: columns
                .into_iter()
                .map(|(name, kind)| (name.into(), kind))
                .collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row, one cell per column in order (missing cells are empty, extra ones ignored).
    pub fn row(&mut self, cells: impl IntoIterator<Item = Cell>) -> &mut Self {
        let mut row: Vec<Cell> = cells.into_iter().take(self.columns.len()).collect();
        row.resize(self.columns.len(), Cell::Empty);
        self.rows.push(row);
        self
    }

    /// Adds rows.
    pub fn rows<R: IntoIterator<Item = Cell>>(
        &mut self,
        rows: impl IntoIterator<Item = R>,
    ) -> &mut Self {
        for row in rows {
            self.row(row);
        }
        self
    }

    /// The columns printed: those with something in at least one row. A table without rows
    /// keeps them all, so its header still says what is missing.
    fn shown(&self) -> Vec<usize> {
        (0..self.columns.len())
            .filter(|&i| self.rows.is_empty() || self.rows.iter().any(|r| !r[i].is_empty()))
            .collect()
    }

    /// The decimal places of a column's numbers.
    fn places(&self, column: usize) -> Option<usize> {
        let Kind::Decimal { fewest, most } = self.columns[column].1 else {
            return None;
        };
        let exact = self.rows.iter().all(|r| match r[column] {
            Cell::Number(x) => fits(x, fewest),
            _ => true,
        });
        Some(if exact { fewest } else { most.max(fewest) })
    }

    /// Each shown column's kind, header and cells as text.
    fn laid_out(&self) -> Vec<(Kind, &str, Vec<String>)> {
        self.shown()
            .into_iter()
            .map(|i| {
                let places = self.places(i);
                let cells = self
                    .rows
                    .iter()
                    .map(|r| match (&r[i], places) {
                        (Cell::Empty, _) => String::new(),
                        (Cell::Text(text), _) => text.clone(),
                        (Cell::Count(n), _) => n.to_string(),
                        (Cell::Number(x), Some(places)) => format!("{x:.places$}"),
                        (Cell::Number(x), None) => x.to_string(),
                    })
                    .collect();
                let (name, kind) = &self.columns[i];
                (*kind, name.as_str(), cells)
            })
            .collect()
    }

    /// The table as Markdown, numeric columns right-aligned, ending with its last row's line.
    pub fn to_markdown(&self) -> String {
        let columns = self.laid_out();
        let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
        let mut out = line(columns.iter().map(|(_, name, _)| escape(name)).collect());
        out.push('|');
        for (kind, _, _) in &columns {
            out.push_str(if kind.is_numeric() { "---:|" } else { "---|" });
        }
        out.push('\n');
        for row in 0..self.rows.len() {
            out.push_str(&line(
                columns
                    .iter()
                    .map(|(_, _, cells)| escape(&cells[row]))
                    .collect(),
            ));
        }
        out
    }
}

/// The console table, without a final newline.
impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let columns = self.laid_out();
        let mut table = comfy_table::Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_header(columns.iter().map(|(_, name, _)| *name).collect::<Vec<_>>());
        for row in 0..self.rows.len() {
            table.add_row(
                columns
                    .iter()
                    .map(|(_, _, cells)| cells[row].as_str())
                    .collect::<Vec<_>>(),
            );
        }
        for (i, (kind, _, _)) in columns.iter().enumerate() {
            if let Some(column) = table.column_mut(i)
                && kind.is_numeric()
            {
                column.set_cell_alignment(CellAlignment::Right);
            }
        }
        write!(f, "{table}")
    }
}

/// Whether `places` decimals write `x` exactly (up to floating-point noise).
fn fits(x: f64, places: usize) -> bool {
    let scaled = x * 10f64.powi(i32::try_from(places).unwrap_or(i32::MAX));
    (scaled - scaled.round()).abs() < 1e-6
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holdings(weights: &[Option<f64>]) -> Table {
        let mut t = Table::new([
            ("symbol", Kind::Text),
            ("industry", Kind::Text),
            ("weight %", Kind::WEIGHT),
        ]);
        for (i, w) in weights.iter().enumerate() {
            t.row([format!("S{i}").into(), Cell::Empty, (*w).into()]);
        }
        t
    }

    #[test]
    fn a_column_empty_in_every_row_is_left_out() {
        let text = holdings(&[Some(1.0), Some(2.5)]).to_string();
        assert!(!text.contains("industry"), "{text}");
        assert!(text.contains("weight %"), "{text}");
    }

    #[test]
    fn a_column_with_one_value_is_kept() {
        let mut t = Table::new([("symbol", Kind::Text), ("industry", Kind::Text)]);
        t.row(["A".into(), Cell::Empty]);
        t.row(["B".into(), "Banks".into()]);
        assert!(t.to_string().contains("industry"));
    }

    #[test]
    fn a_table_without_rows_keeps_its_header() {
        let text = holdings(&[]).to_string();
        assert!(
            text.contains("industry") && text.contains("weight %"),
            "{text}"
        );
    }

    #[test]
    fn weights_get_two_places_when_every_weight_fits_in_two() {
        let md = holdings(&[Some(40.0), Some(7.5), None]).to_markdown();
        assert!(md.contains("| S0 | 40.00 |"), "{md}");
        assert!(md.contains("| S1 | 7.50 |"), "{md}");
        assert!(md.contains("| S2 |  |"), "{md}");
    }

    #[test]
    fn weights_get_four_places_when_one_needs_more_than_two() {
        let md = holdings(&[Some(40.0), Some(0.012_345)]).to_markdown();
        assert!(md.contains("| S0 | 40.0000 |"), "{md}");
        assert!(md.contains("| S1 | 0.0123 |"), "{md}");
    }

    #[test]
    fn floating_point_noise_does_not_ask_for_more_places() {
        let md = holdings(&[Some(0.1 + 0.2)]).to_markdown();
        assert!(md.contains("| 0.30 |"), "{md}");
    }

    #[test]
    fn numbers_are_right_aligned_under_their_header() {
        let mut t = Table::new([("what", Kind::Text), ("count", Kind::Count)]);
        t.row(["ETFs".into(), 2usize.into()]);
        t.row(["Stocks".into(), 1234usize.into()]);
        let text = t.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].ends_with("┆ count │"), "{text}");
        assert!(lines[3].ends_with("┆     2 │"), "{text}");
        assert!(lines[4].ends_with("┆  1234 │"), "{text}");
        assert!(lines[3].starts_with("│ ETFs   ┆"), "{text}");
    }

    #[test]
    fn markdown_marks_numeric_columns_right_aligned_and_escapes_pipes() {
        let mut t = Table::new([("name", Kind::Text), ("share %", Kind::PERCENT)]);
        t.row(["A|B".into(), 12.3456.into()]);
        assert_eq!(
            t.to_markdown(),
            "| name | share % |\n|---|---:|\n| A\\|B | 12.35 |\n"
        );
    }

    #[test]
    fn missing_cells_are_empty_and_extra_cells_ignored() {
        let mut t = Table::new([("a", Kind::Text), ("b", Kind::Text)]);
        t.row(["x".into()]);
        t.row(["y".into(), "z".into(), "extra".into()]);
        assert_eq!(
            t.to_markdown(),
            "| a | b |\n|---|---|\n| x |  |\n| y | z |\n"
        );
    }
}
