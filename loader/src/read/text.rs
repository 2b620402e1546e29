//! Checks on a file's bytes before any CSV parsing: text or binary, UTF-8, a byte-order mark,
//! and a quote left open (the csv crate would silently read to the end of the file).

use super::Rejection;

/// Returns the file as text without its byte-order mark, or why it is not CSV text.
pub fn decode(bytes: &[u8]) -> Result<&str, Rejection> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Rejection::new(None, "the file is empty"));
    }
    if let Some(at) = bytes
        .iter()
        .position(|&b| b == 0 || (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c)))
    {
        return Err(Rejection::new(
            Some(line_of(bytes, at)),
            "binary content, not CSV text (control byte found)",
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Rejection::new(
            Some(line_of(bytes, e.valid_up_to())),
            "the file is not UTF-8 text",
        )
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Some(line) = unterminated_quote(text) {
        return Err(Rejection::new(
            Some(line),
            "a quoted field opened here is never closed",
        ));
    }
    Ok(text)
}

/// The 1-based line of byte offset `at`.
fn line_of(bytes: &[u8], at: usize) -> u64 {
    1 + bytes[..at].iter().filter(|&&b| b == b'\n').count() as u64
}

/// The line where a quoted field opens and never closes, following RFC 4180: a quote opens a
/// field only at its start, and `""` inside a quoted field is an escaped quote.
fn unterminated_quote(text: &str) -> Option<u64> {
    let mut line = 1u64;
    let mut opened_at = 0u64;
    let mut in_quotes = false;
    let mut at_field_start = true;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' {
            line += 1;
        }
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                } else {
                    in_quotes = false;
                }
            }
            continue;
        }
        match c {
            '"' if at_field_start => {
                in_quotes = true;
                opened_at = line;
                at_field_start = false;
            }
            ',' | '\n' | '\r' => at_field_start = true,
            _ => at_field_start = false,
        }
    }
    in_quotes.then_some(opened_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quote_left_open_is_found_on_its_line() {
        let text = "symbol,name,weight\nAAPL,\"Apple,1\nMSFT,Microsoft,2\n";
        assert_eq!(unterminated_quote(text), Some(2));
        let fine = "a,\"b \"\"x\"\" c\",d\n\"multi\nline\",e\n";
        assert_eq!(unterminated_quote(fine), None);
        // A quote inside an unquoted field is a literal character.
        assert_eq!(unterminated_quote("a,12\" pipe,b\n"), None);
    }

    #[test]
    fn binary_and_empty_files_are_refused() {
        assert_eq!(decode(b"symbol\nAB\0C\n").map_err(|r| r.line), Err(Some(2)));
        assert!(decode(b"  \n\n").is_err());
        assert_eq!(
            decode(b"symbol\n\xff\xfe\n").map_err(|r| r.line),
            Err(Some(2))
        );
        assert_eq!(decode("\u{feff}symbol\n".as_bytes()).ok(), Some("symbol\n"));
    }
}
