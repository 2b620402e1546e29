//! Weights in percent of the fund, as providers write them: `7.13`, `7.13%`, `"1,234.5"`.

/// Why a cell is not a weight.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeightError {
    #[error("empty weight")]
    Empty,
    #[error("weight {0:?} is not a number")]
    NotANumber(String),
    #[error("weight {0:?} is outside 0–100 %")]
    OutOfRange(String),
}

/// Parses a weight cell into percent (0–100).
pub fn parse(raw: &str) -> Result<f64, WeightError> {
    let cell = crate::symbol::trim_cell(raw);
    if cell.is_empty() || cell == "-" {
        return Err(WeightError::Empty);
    }
    let cleaned: String = cell
        .trim_end_matches('%')
        .chars()
        .filter(|c| *c != ',' && *c != '"' && !c.is_whitespace())
        .collect();
    let value: f64 = cleaned
        .parse()
        .map_err(|_| WeightError::NotANumber(cell.to_owned()))?;
    if !value.is_finite() || !(0.0..=100.0).contains(&value) {
        return Err(WeightError::OutOfRange(cell.to_owned()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_spellings_parse_to_percent() {
        assert_eq!(parse("7.13"), Ok(7.13));
        assert_eq!(parse("7.13%"), Ok(7.13));
        assert_eq!(parse(" 14.59997 "), Ok(14.59997));
        assert_eq!(parse("0"), Ok(0.0));
        assert_eq!(parse("\"1,2.5\""), Ok(12.5));
    }

    #[test]
    fn junk_and_impossible_weights_are_rejected() {
        assert_eq!(parse(""), Err(WeightError::Empty));
        assert_eq!(parse("-"), Err(WeightError::Empty));
        assert!(matches!(parse("abc"), Err(WeightError::NotANumber(_))));
        assert!(matches!(parse("-1.5"), Err(WeightError::OutOfRange(_))));
        assert!(matches!(parse("1,234.5"), Err(WeightError::OutOfRange(_))));
        assert!(matches!(parse("NaN"), Err(WeightError::OutOfRange(_))));
    }

    #[test]
    fn weights_round_trip_through_their_shortest_decimal() {
        for text in ["14.59997", "7.830057", "10.000001", "99.999999"] {
            let w = parse(text).expect("weight");
            assert_eq!(w.to_string(), text);
        }
    }
}
