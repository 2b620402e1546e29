//! Opaque strings for ids and cursors: base64url without padding (RFC 4648 §5), safe in a URL
//! query string as it is. Clients pass them back and never read them.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Encodes bytes.
pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// Decodes what [`encode`] made (a trailing `=` padding is tolerated); `None` for anything
/// else.
pub(crate) fn decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=').as_bytes();
    if text.len() % 4 == 1 {
        return None;
    }
    let value = |c: u8| ALPHABET.iter().position(|&a| a == c).map(|v| v as u32);
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c)? << (18 - 6 * i);
        }
        for i in 0..chunk.len() - 1 {
            out.push(((n >> (16 - 8 * i)) & 0xff) as u8);
        }
    }
    // Only the canonical encoding of the bytes is accepted.
    (encode(&out).as_bytes() == text).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_base64url_and_reads_back() {
        assert_eq!(encode(b"Stock:AAPL"), "U3RvY2s6QUFQTA");
        assert_eq!(encode(b"Group:ETF:SPY"), "R3JvdXA6RVRGOlNQWQ");
        assert_eq!(encode(b"\xfb\xff"), "-_8");
        for text in [
            "",
            "a",
            "ab",
            "abc",
            "abcd",
            "Group:SECTOR:information_technology",
        ] {
            assert_eq!(
                decode(&encode(text.as_bytes())).as_deref(),
                Some(text.as_bytes())
            );
        }
        assert_eq!(
            decode("U3RvY2s6QUFQTA==").as_deref(),
            Some(&b"Stock:AAPL"[..])
        );
        for junk in ["U", "U3R*", "U3RvY2s6QUFQTB"] {
            assert_eq!(decode(junk), None, "{junk}");
        }
    }
}
