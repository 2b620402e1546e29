//! Markets: where a listing trades, as an ISO 3166-1 alpha-2 country code.
//!
//! Provider files say it in different ways: a country name (iShares' `Location`), an exchange
//! name, or an identifier whose first two letters are a country (an ISIN). This module turns
//! each into a code; anything it does not know stays unknown rather than guessed.

/// Countries: code, display name, and other spellings providers use.
const COUNTRIES: &[(&str, &str, &[&str])] = &[
    (
        "US",
        "United States",
        &["USA", "United States of America", "U.S."],
    ),
    ("CA", "Canada", &[]),
    ("MX", "Mexico", &[]),
    ("BR", "Brazil", &[]),
    ("CL", "Chile", &[]),
    ("CO", "Colombia", &[]),
    ("PE", "Peru", &[]),
    ("AR", "Argentina", &[]),
    ("GB", "United Kingdom", &["UK", "Great Britain", "Britain"]),
    ("IE", "Ireland", &[]),
    ("FR", "France", &[]),
    ("DE", "Germany", &[]),
    ("NL", "Netherlands", &["The Netherlands", "Holland"]),
    ("BE", "Belgium", &[]),
    ("LU", "Luxembourg", &[]),
    ("CH", "Switzerland", &[]),
    ("AT", "Austria", &[]),
    ("IT", "Italy", &[]),
    ("ES", "Spain", &[]),
    ("PT", "Portugal", &[]),
    ("SE", "Sweden", &[]),
    ("NO", "Norway", &[]),
    ("DK", "Denmark", &[]),
    ("FI", "Finland", &[]),
    ("IS", "Iceland", &[]),
    ("PL", "Poland", &[]),
    ("CZ", "Czech Republic", &["Czechia"]),
    ("HU", "Hungary", &[]),
    ("GR", "Greece", &[]),
    ("TR", "Turkey", &["Türkiye", "Turkiye"]),
    ("RU", "Russia", &["Russian Federation"]),
    ("IL", "Israel", &[]),
    ("SA", "Saudi Arabia", &[]),
    ("AE", "United Arab Emirates", &["UAE"]),
    ("QA", "Qatar", &[]),
    ("KW", "Kuwait", &[]),
    ("EG", "Egypt", &[]),
    ("ZA", "South Africa", &[]),
    ("IN", "India", &[]),
    ("CN", "China", &["People's Republic of China"]),
    ("HK", "Hong Kong", &[]),
    ("TW", "Taiwan", &["Taiwan (Republic of China)"]),
    (
        "KR",
        "South Korea",
        &["Korea (South)", "Korea", "Republic of Korea"],
    ),
    ("JP", "Japan", &[]),
    ("SG", "Singapore", &[]),
    ("MY", "Malaysia", &[]),
    ("TH", "Thailand", &[]),
    ("ID", "Indonesia", &[]),
    ("PH", "Philippines", &[]),
    ("VN", "Vietnam", &["Viet Nam"]),
    ("PK", "Pakistan", &[]),
    ("AU", "Australia", &[]),
    ("NZ", "New Zealand", &[]),
    ("MO", "Macau", &["Macao"]),
    ("BM", "Bermuda", &[]),
    ("KY", "Cayman Islands", &[]),
    ("JE", "Jersey", &[]),
    ("GG", "Guernsey", &[]),
    ("IM", "Isle of Man", &[]),
    ("CY", "Cyprus", &[]),
    ("MT", "Malta", &[]),
    ("PA", "Panama", &[]),
    ("PR", "Puerto Rico", &[]),
    ("UY", "Uruguay", &[]),
];

/// Exchanges, by words their names contain, and the country they are in.
const EXCHANGES: &[(&str, &str)] = &[
    ("NEW YORK STOCK EXCHANGE", "US"),
    ("NYSE", "US"),
    ("NASDAQ", "US"),
    ("CBOE", "US"),
    ("TORONTO", "CA"),
    ("LONDON", "GB"),
    ("TOKYO", "JP"),
    ("XETRA", "DE"),
    ("DEUTSCHE BOERSE", "DE"),
    ("FRANKFURT", "DE"),
    ("EURONEXT PARIS", "FR"),
    ("EURONEXT AMSTERDAM", "NL"),
    ("EURONEXT BRUSSELS", "BE"),
    ("EURONEXT LISBON", "PT"),
    ("EURONEXT DUBLIN", "IE"),
    ("BORSA ITALIANA", "IT"),
    ("SIX SWISS", "CH"),
    ("BOLSA DE MADRID", "ES"),
    ("HONG KONG", "HK"),
    ("SHANGHAI", "CN"),
    ("SHENZHEN", "CN"),
    ("TAIWAN", "TW"),
    ("KOREA", "KR"),
    ("ASX", "AU"),
    ("AUSTRALIAN SECURITIES", "AU"),
    ("SINGAPORE", "SG"),
    ("NATIONAL STOCK EXCHANGE OF INDIA", "IN"),
    ("BOMBAY", "IN"),
    ("SAUDI", "SA"),
    ("JOHANNESBURG", "ZA"),
    ("B3", "BR"),
    ("BOLSA MEXICANA", "MX"),
    ("STOCKHOLM", "SE"),
    ("COPENHAGEN", "DK"),
    ("HELSINKI", "FI"),
    ("OSLO", "NO"),
    ("TEL AVIV", "IL"),
];

/// A country's code from its name, one of its other spellings, or its code (any case).
pub fn country_code(text: &str) -> Option<&'static str> {
    country_id(text).and_then(country_at)
}

/// The country [`country_code`] finds, as its place in the table: two bytes where a graph
/// keeps one per membership. [`country_at`] gives its code.
pub fn country_id(text: &str) -> Option<u16> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    COUNTRIES
        .iter()
        .position(|(code, name, others)| {
            code.eq_ignore_ascii_case(text)
                || name.eq_ignore_ascii_case(text)
                || others.iter().any(|o| o.eq_ignore_ascii_case(text))
        })
        .and_then(|i| u16::try_from(i).ok())
}

/// The code of a country by its [`country_id`].
pub fn country_at(id: u16) -> Option<&'static str> {
    COUNTRIES.get(usize::from(id)).map(|(code, _, _)| *code)
}

/// A country's display name from its code.
pub fn country_name(code: &str) -> Option<&'static str> {
    COUNTRIES
        .iter()
        .find(|(c, _, _)| c.eq_ignore_ascii_case(code))
        .map(|(_, name, _)| *name)
}

/// The country of an exchange named in a file (`Tokyo Stock Exchange` → `JP`).
pub fn exchange_country(exchange: &str) -> Option<&'static str> {
    let upper = exchange.trim().to_ascii_uppercase();
    if upper.is_empty() || upper == "-" {
        return None;
    }
    EXCHANGES
        .iter()
        .find(|(words, _)| upper.contains(words))
        .map(|(_, code)| *code)
}

/// The country an ISIN was issued under (its first two letters), when the ISIN is well formed
/// and the country is one this module knows.
pub fn isin_country(isin: &str) -> Option<&'static str> {
    let isin = isin.trim();
    let bytes = isin.as_bytes();
    let well_formed = bytes.len() == 12
        && bytes[..2].iter().all(u8::is_ascii_uppercase)
        && bytes[2..11].iter().all(u8::is_ascii_alphanumeric)
        && bytes[11].is_ascii_digit();
    if !well_formed {
        return None;
    }
    COUNTRIES
        .iter()
        .find(|(code, _, _)| code.as_bytes() == &bytes[..2])
        .map(|(code, _, _)| *code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_spellings_and_codes_map_to_one_code() {
        assert_eq!(country_code("Japan"), Some("JP"));
        assert_eq!(country_code("united kingdom"), Some("GB"));
        assert_eq!(country_code("Korea (South)"), Some("KR"));
        assert_eq!(country_code("fr"), Some("FR"));
        assert_eq!(country_code("European Union"), None);
        assert_eq!(country_code("-"), None);
        assert_eq!(country_name("CH"), Some("Switzerland"));
    }

    #[test]
    fn exchanges_and_isins_name_countries() {
        assert_eq!(exchange_country("Tokyo Stock Exchange"), Some("JP"));
        assert_eq!(exchange_country("NASDAQ"), Some("US"));
        assert_eq!(exchange_country(""), None);
        assert_eq!(isin_country("ES0113900J37"), Some("ES"));
        assert_eq!(isin_country("US0378331005"), Some("US"));
        assert_eq!(isin_country("XS0000000001"), None);
        assert_eq!(isin_country("ES0113900J3"), None);
    }
}
