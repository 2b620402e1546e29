//! Query texts to documents, fast. async-graphql's own parser (a pest grammar) costs about a
//! fifth of the server's CPU for a query it has not seen before; this one reads the same
//! grammar in one pass over the bytes and builds the same [`ExecutableDocument`], positions
//! included. It reads what clients send (operations, fragments, fields, arguments, variables,
//! directives, every value but block strings); for anything else, and for every text that is
//! not a valid document, it gives up and async-graphql's parser decides, so errors read as
//! they always did. The tests hold it to that parser on a corpus and on random edits of it:
//! whatever this one accepts, that one accepts as the same document.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use async_graphql::parser::types::{
    Directive, DocumentOperations, ExecutableDocument, Field, FragmentDefinition, FragmentSpread,
    InlineFragment, OperationDefinition, OperationType, Selection, SelectionSet, Type,
    TypeCondition, VariableDefinition,
};
use async_graphql::parser::{Pos, Positioned};
use async_graphql::{Name, Number};
use async_graphql_value::Value;
use async_graphql_value::indexmap::IndexMap;

/// Parses a query text; the error is async-graphql's, for a text that does not parse.
pub fn parse(query: &str) -> async_graphql::parser::Result<ExecutableDocument> {
    match fast(query) {
        Some(document) => Ok(document),
        None => async_graphql::parser::parse_query(query),
    }
}

/// How deeply selection sets, values and list types may nest before the fast parser leaves
/// the text to async-graphql's (which allows 64 selection sets, and reports the excess).
const MAX_NESTING: usize = 32;

/// The fast parser: the document, or `None` when the text is not one it reads (invalid, or
/// valid but rare: block strings, keywords run into names, deep nesting).
fn fast(text: &str) -> Option<ExecutableDocument> {
    let mut p = Parser {
        text,
        bytes: text.as_bytes(),
        at: 0,
        counted: 0,
        line: 1,
        column: 1,
    };
    let mut operations: Option<DocumentOperations> = None;
    let mut fragments: HashMap<Name, Positioned<FragmentDefinition>> = HashMap::new();
    p.skip();
    if p.at == p.bytes.len() {
        return None;
    }
    while p.at < p.bytes.len() {
        let pos = p.pos();
        if p.keyword("fragment") {
            let (name, fragment) = p.fragment_definition(pos)?;
            match fragments.entry(name) {
                Entry::Occupied(_) => return None,
                Entry::Vacant(entry) => {
                    entry.insert(fragment);
                }
            }
        } else {
            let (name, operation) = p.operation_definition(pos)?;
            match (&mut operations, name) {
                (None, None) => operations = Some(DocumentOperations::Single(operation)),
                (None, Some(name)) => {
                    operations = Some(DocumentOperations::Multiple(HashMap::from([(
                        name, operation,
                    )])));
                }
                (Some(DocumentOperations::Multiple(map)), Some(name)) => match map.entry(name) {
                    Entry::Occupied(_) => return None,
                    Entry::Vacant(entry) => {
                        entry.insert(operation);
                    }
                },
                // An anonymous operation beside another.
                (Some(_), _) => return None,
            }
        }
        p.skip();
    }
    Some(ExecutableDocument {
        operations: operations?,
        fragments,
    })
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    /// The byte offset read up to.
    at: usize,
    /// The offset `line` and `column` stand at (positions are asked in order).
    counted: usize,
    line: usize,
    column: usize,
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_name_continue(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The grammar's `WHITESPACE` (the byte-order mark aside, which [`Parser::whitespace`] reads).
fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b',' | b'\t' | b'\r' | b'\n')
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.bytes.get(self.at + ahead).copied()
    }

    /// The line and column of the current offset, counted as async-graphql counts them: in
    /// characters, a `\n` starting a line, a lone `\r` returning to its first column.
    fn pos(&mut self) -> Pos {
        for &b in &self.bytes[self.counted..self.at] {
            match b {
                b'\n' => {
                    self.line += 1;
                    self.column = 1;
                }
                b'\r' => self.column = 1,
                // One per character: UTF-8 continuation bytes do not count.
                _ if b & 0xC0 != 0x80 => self.column += 1,
                _ => {}
            }
        }
        self.counted = self.at;
        Pos {
            line: self.line,
            column: self.column,
        }
    }

    /// One `WHITESPACE` (a byte-order mark too); whether there was one.
    fn whitespace(&mut self) -> bool {
        match self.peek() {
            Some(b) if is_whitespace(b) => {
                self.at += 1;
                true
            }
            Some(0xEF) if self.bytes[self.at..].starts_with("\u{feff}".as_bytes()) => {
                self.at += 3;
                true
            }
            _ => false,
        }
    }

    /// Whitespace and comments between tokens.
    fn skip(&mut self) {
        loop {
            if self.whitespace() {
                continue;
            }
            if self.peek() == Some(b'#') {
                while let Some(b) = self.peek() {
                    if b == b'\n' || b == b'\r' {
                        break;
                    }
                    self.at += 1;
                }
                continue;
            }
            return;
        }
    }

    /// Consumes `byte` and the whitespace after it, or fails.
    fn expect(&mut self, byte: u8) -> Option<()> {
        if self.peek() != Some(byte) {
            return None;
        }
        self.at += 1;
        self.skip();
        Some(())
    }

    /// Whether a keyword stands here as a word of its own (then it is consumed, with the
    /// whitespace after it). A keyword run into a name (`queryX`) is not one.
    fn keyword(&mut self, word: &str) -> bool {
        let end = self.at + word.len();
        if self.bytes[self.at..].starts_with(word.as_bytes())
            && !self.bytes.get(end).copied().is_some_and(is_name_continue)
        {
            self.at = end;
            self.skip();
            true
        } else {
            false
        }
    }

    /// A name, positioned, and the whitespace after it.
    fn name(&mut self) -> Option<Positioned<Name>> {
        let start = self.at;
        if !self.peek().is_some_and(is_name_start) {
            return None;
        }
        let pos = self.pos();
        self.at += 1;
        while self.peek().is_some_and(is_name_continue) {
            self.at += 1;
        }
        let name = Name::new(&self.text[start..self.at]);
        self.skip();
        Some(Positioned::new(name, pos))
    }

    /// An operation at `pos`: its name, if it has one, and its definition.
    fn operation_definition(
        &mut self,
        pos: Pos,
    ) -> Option<(Option<Name>, Positioned<OperationDefinition>)> {
        if self.peek() == Some(b'{') {
            let selection_set = self.selection_set(0)?;
            let definition = OperationDefinition {
                ty: OperationType::Query,
                variable_definitions: Vec::new(),
                directives: Vec::new(),
                selection_set,
            };
            return Some((None, Positioned::new(definition, pos)));
        }
        let ty = if self.keyword("query") {
            OperationType::Query
        } else if self.keyword("mutation") {
            OperationType::Mutation
        } else if self.keyword("subscription") {
            OperationType::Subscription
        } else {
            return None;
        };
        let name = if self.peek().is_some_and(is_name_start) {
            Some(self.name()?.node)
        } else {
            None
        };
        let mut variable_definitions = Vec::new();
        if self.peek() == Some(b'(') {
            self.expect(b'(')?;
            while self.peek() != Some(b')') {
                variable_definitions.push(self.variable_definition()?);
            }
            self.expect(b')')?;
        }
        let directives = self.directives()?;
        let selection_set = self.selection_set(0)?;
        let definition = OperationDefinition {
            ty,
            variable_definitions,
            directives,
            selection_set,
        };
        Some((name, Positioned::new(definition, pos)))
    }

    /// `fragment Name on Type @directives { ... }` at `pos`, the keyword already read.
    fn fragment_definition(&mut self, pos: Pos) -> Option<(Name, Positioned<FragmentDefinition>)> {
        let name = self.name()?;
        if name.node == "on" {
            return None;
        }
        let type_condition = self.type_condition()?;
        let directives = self.directives()?;
        let selection_set = self.selection_set(0)?;
        let definition = FragmentDefinition {
            type_condition,
            directives,
            selection_set,
        };
        Some((name.node, Positioned::new(definition, pos)))
    }

    /// `on Type`: the grammar wants whitespace, not a comment, between the two.
    fn type_condition(&mut self) -> Option<Positioned<TypeCondition>> {
        if !(self.bytes[self.at..].starts_with(b"on")) {
            return None;
        }
        let pos = self.pos();
        self.at += 2;
        if !self.whitespace() {
            return None;
        }
        while self.whitespace() {}
        let on = self.name()?;
        Some(Positioned::new(TypeCondition { on }, pos))
    }

    /// `$name: Type @directives = default`.
    fn variable_definition(&mut self) -> Option<Positioned<VariableDefinition>> {
        let pos = self.pos();
        self.expect(b'$')?;
        let name = self.name()?;
        self.expect(b':')?;
        let var_type = self.type_()?;
        let directives = self.directives()?;
        let default_value = if self.peek() == Some(b'=') {
            self.expect(b'=')?;
            let pos = self.pos();
            let value = self.value(0)?.into_const()?;
            Some(Positioned::new(value, pos))
        } else {
            None
        };
        Some(Positioned::new(
            VariableDefinition {
                name,
                var_type,
                directives,
                default_value,
            },
            pos,
        ))
    }

    /// A type, written without whitespace inside (`[Int!]!`).
    fn type_(&mut self) -> Option<Positioned<Type>> {
        let pos = self.pos();
        let start = self.at;
        self.type_text(0)?;
        let ty = Type::new(&self.text[start..self.at])?;
        self.skip();
        Some(Positioned::new(ty, pos))
    }

    fn type_text(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_NESTING {
            return None;
        }
        if self.peek() == Some(b'[') {
            self.at += 1;
            self.type_text(depth + 1)?;
            if self.peek() != Some(b']') {
                return None;
            }
            self.at += 1;
        } else {
            if !self.peek().is_some_and(is_name_start) {
                return None;
            }
            while self.peek().is_some_and(is_name_continue) {
                self.at += 1;
            }
        }
        if self.peek() == Some(b'!') {
            self.at += 1;
        }
        Some(())
    }

    fn directives(&mut self) -> Option<Vec<Positioned<Directive>>> {
        let mut directives = Vec::new();
        while self.peek() == Some(b'@') {
            let pos = self.pos();
            self.expect(b'@')?;
            let name = self.name()?;
            let arguments = self.arguments()?;
            directives.push(Positioned::new(Directive { name, arguments }, pos));
        }
        Some(directives)
    }

    /// `(name: value ...)`, if there; at least one argument inside.
    fn arguments(&mut self) -> Option<Vec<(Positioned<Name>, Positioned<Value>)>> {
        let mut arguments = Vec::new();
        if self.peek() != Some(b'(') {
            return Some(arguments);
        }
        self.expect(b'(')?;
        loop {
            let name = self.name()?;
            self.expect(b':')?;
            let pos = self.pos();
            let value = self.value(0)?;
            arguments.push((name, Positioned::new(value, pos)));
            if self.peek() == Some(b')') {
                break;
            }
        }
        self.expect(b')')?;
        Some(arguments)
    }

    /// `{ selection ... }`: at least one selection.
    fn selection_set(&mut self, depth: usize) -> Option<Positioned<SelectionSet>> {
        if depth > MAX_NESTING {
            return None;
        }
        let pos = self.pos();
        self.expect(b'{')?;
        let mut items = Vec::new();
        loop {
            items.push(self.selection(depth)?);
            if self.peek() == Some(b'}') {
                break;
            }
        }
        self.expect(b'}')?;
        Some(Positioned::new(SelectionSet { items }, pos))
    }

    fn selection(&mut self, depth: usize) -> Option<Positioned<Selection>> {
        let pos = self.pos();
        if self.bytes[self.at..].starts_with(b"...") {
            self.at += 3;
            self.skip();
            let selection = if self.bytes[self.at..].starts_with(b"on")
                && !self.peek_at(2).is_some_and(is_name_continue)
            {
                // `... on Type`: an inline fragment (and `...on` run into a name, a spread).
                let type_condition = Some(self.type_condition()?);
                let directives = self.directives()?;
                let selection_set = self.selection_set(depth + 1)?;
                Selection::InlineFragment(Positioned::new(
                    InlineFragment {
                        type_condition,
                        directives,
                        selection_set,
                    },
                    pos,
                ))
            } else if matches!(self.peek(), Some(b'{' | b'@')) {
                let directives = self.directives()?;
                let selection_set = self.selection_set(depth + 1)?;
                Selection::InlineFragment(Positioned::new(
                    InlineFragment {
                        type_condition: None,
                        directives,
                        selection_set,
                    },
                    pos,
                ))
            } else {
                let fragment_name = self.name()?;
                let directives = self.directives()?;
                Selection::FragmentSpread(Positioned::new(
                    FragmentSpread {
                        fragment_name,
                        directives,
                    },
                    pos,
                ))
            };
            return Some(Positioned::new(selection, pos));
        }
        let first = self.name()?;
        let (alias, name) = if self.peek() == Some(b':') {
            self.expect(b':')?;
            (Some(first), self.name()?)
        } else {
            (None, first)
        };
        let arguments = self.arguments()?;
        let directives = self.directives()?;
        let selection_set = if self.peek() == Some(b'{') {
            self.selection_set(depth + 1)?
        } else {
            Positioned::default()
        };
        let field = Field {
            alias,
            name,
            arguments,
            directives,
            selection_set,
        };
        Some(Positioned::new(
            Selection::Field(Positioned::new(field, pos)),
            pos,
        ))
    }

    /// A value (constant or not; the caller converts), and the whitespace after it.
    fn value(&mut self, depth: usize) -> Option<Value> {
        if depth > MAX_NESTING {
            return None;
        }
        let value = match self.peek()? {
            b'$' => {
                self.expect(b'$')?;
                return Some(Value::Variable(self.name()?.node));
            }
            b'"' => Value::String(self.string()?),
            b'-' | b'0'..=b'9' => Value::Number(self.number()?),
            b'[' => {
                self.expect(b'[')?;
                let mut items = Vec::new();
                while self.peek() != Some(b']') {
                    items.push(self.value(depth + 1)?);
                }
                self.expect(b']')?;
                return Some(Value::List(items));
            }
            b'{' => {
                self.expect(b'{')?;
                let mut fields = Vec::new();
                while self.peek() != Some(b'}') {
                    let name = self.name()?.node;
                    self.expect(b':')?;
                    fields.push((name, self.value(depth + 1)?));
                }
                self.expect(b'}')?;
                // As async-graphql collects them: a repeated field keeps its first place and
                // its last value.
                return Some(Value::Object(
                    fields.into_iter().collect::<IndexMap<_, _>>(),
                ));
            }
            b if is_name_start(b) => {
                let name = self.name()?.node;
                return Some(match name.as_str() {
                    "true" => Value::Boolean(true),
                    "false" => Value::Boolean(false),
                    "null" => Value::Null,
                    // `trueish` reads as `true` then `ish` there: too odd to be worth it.
                    n if n.starts_with("true")
                        || n.starts_with("false")
                        || n.starts_with("null") =>
                    {
                        return None;
                    }
                    _ => Value::Enum(name),
                });
            }
            _ => return None,
        };
        self.skip();
        Some(value)
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, not followed by a name's first
    /// character, read as async-graphql reads it.
    fn number(&mut self) -> Option<Number> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => {
                while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    self.at += 1;
                }
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') && self.peek_at(1).is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
            while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                self.at += 1;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(self.peek_at(1), Some(b'+' | b'-')));
            if self.peek_at(1 + sign).is_some_and(|b| b.is_ascii_digit()) {
                self.at += 1 + sign;
                while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    self.at += 1;
                }
            }
        }
        if self.peek().is_some_and(is_name_start) {
            return None;
        }
        self.text[start..self.at].parse().ok()
    }

    /// `"..."` with its escapes (a block string `"""` is left to async-graphql's parser).
    fn string(&mut self) -> Option<String> {
        if self.bytes[self.at..].starts_with(b"\"\"\"") {
            return None;
        }
        self.at += 1;
        let mut out = String::new();
        let mut run = self.at;
        loop {
            match self.peek()? {
                b'"' => {
                    out.push_str(&self.text[run..self.at]);
                    self.at += 1;
                    return Some(out);
                }
                b'\n' | b'\r' => return None,
                b'\\' => {
                    out.push_str(&self.text[run..self.at]);
                    let escaped = match self.peek_at(1)? {
                        c @ (b'"' | b'\\' | b'/') => char::from(c),
                        b'b' => '\x08',
                        b'f' => '\x0C',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hex = self.text.get(self.at + 2..self.at + 6)?;
                            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                                return None;
                            }
                            // Surrogates are not characters.
                            let code = u32::from_str_radix(hex, 16).ok()?;
                            self.at += 4;
                            char::from_u32(code)?
                        }
                        _ => return None,
                    };
                    out.push(escaped);
                    self.at += 2;
                    run = self.at;
                }
                _ => self.at += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A document as text that two equal documents share: operations and fragments in name
    /// order (they sit in hash maps), every node with its position.
    fn canonical(document: &ExecutableDocument) -> String {
        let operations = match &document.operations {
            DocumentOperations::Single(op) => format!("{op:?}"),
            DocumentOperations::Multiple(map) => {
                let mut ops: Vec<_> = map.iter().map(|(n, op)| format!("{n}={op:?}")).collect();
                ops.sort();
                ops.join("\n")
            }
        };
        let mut fragments: Vec<_> = document
            .fragments
            .iter()
            .map(|(n, f)| format!("{n}={f:?}"))
            .collect();
        fragments.sort();
        format!("{operations}\n{}", fragments.join("\n"))
    }

    /// What the fast parser must hold to: what it reads, async-graphql's parser reads as the
    /// same document; what that parser refuses, it refuses. Returns whether it read the text.
    fn agrees(text: &str) -> bool {
        let reference = async_graphql::parser::parse_query(text);
        match (fast(text), reference) {
            (Some(fast), Ok(reference)) => {
                assert_eq!(
                    canonical(&fast),
                    canonical(&reference),
                    "documents differ for {text:?}"
                );
                true
            }
            (Some(_), Err(e)) => panic!("read {text:?}, which does not parse: {e}"),
            (None, _) => false,
        }
    }

    /// How many of the corpus's first texts the fast parser must read itself.
    const FAST: usize = 24;

    /// Texts clients send (the first [`FAST`]), and the grammar's corners.
    const CORPUS: &[&str] = &[
        r#"{ stock(symbol: "AAPL") { etfs { weight group { name } } } }"#,
        r#"{ s17: stock(symbol: "MSFT") { etfs { weight group { name } } } }"#,
        r#"{ etf(name: "VTI") { members(first: 5000) { edges { node { symbol weight } } } } }"#,
        "{ __typename }",
        "query { a }",
        "query Q { a }",
        "query Q($id: ID!, $n: Int = 10, $list: [[String!]]! = [[\"a\"]], $o: In = {a: 1, b: [true, false, null]}) { node(id: $id) { id } }",
        "query Q($x: Int @deprecated = 3) { a(x: $x) }",
        "mutation M { load(etf: \"XLK\") { ok } }",
        "subscription S { versions { version } }",
        "query A { a } query B { b } fragment F on T { c }",
        "{ ...F ... on T { x } ... @include(if: true) { y } ... { z } }  fragment F on T { a }",
        "{ a @skip(if: $v) @include(if: true) b: c(d: ENUM_VALUE, e: -1.5e-3, f: 0, g: 12.0, h: 1E5, i: \"\\n\\t\\\"\\\\\\/\\u00e9\\u2a1A\") }",
        "# comment\n{\r\n  a # trailing\r  b,c,,d\t}\n",
        "\u{feff}{ a }",
        "{ a(x: \"héllo wörld ✓\") { b } }",
        "{ a(s: \"ünïcödé\") b(t: \"x\") }",
        "query Q($a: [Int]) { a(list: [1 2 3], obj: {x: {y: [{}]}, z: []}, v: $a) }",
        "{ a(o: {x: 1, x: 2, y: 3}) }",
        "{ a(x: -0) }",
        "{ a(x: 1.5E+2) b(y: 2e-2) }",
        "{ a(x: 123456789012345678901234567890) }",
        "{\r\n\r\n  a\r\r  b }",
        // graphql-js's introspection query, as GraphiQL sends it.
        include_str!("../../../tests/queries/introspection.graphql"),
        // Not documents, or not read fast.
        "{ a(x: \"héllo\") { b } }\n{ c }",
        "{ émoji: a }",
        "{ a(n: 00) }",
        "{ a(n: [00 1]) }",
        "{ a(n: 1.) }",
        "{ a(n: 1e) }",
        "{ a(n: 1abc) }",
        "{ a(n: -) }",
        "{ a(b: trueish) }",
        "{ a(b: [trueish]) }",
        "{ a(b: nullable) }",
        "{ a(s: \"\"\"block\n  string\"\"\") }",
        "{ a(s: \"unterminated) }",
        "{ a(s: \"line\nbreak\") }",
        "{ a(s: \"\\ud800\") }",
        "{ a(s: \"\\q\") }",
        "{ a }  { b }",
        "query A { a } { b }",
        "query A { a } query A { b }",
        "fragment F on T { a } fragment F on T { b } { ...F }",
        "fragment F on T { a }",
        "fragment on on T { a } { ...on }",
        "{ ...on }",
        "{ ...onF }",
        "{ ... on }",
        "{ ... on T }",
        "{ ... on #c\n T { a } }",
        "{ ... on,T { a } }",
        "queryX { a }",
        "query{a}",
        "fragmentF on T { a } { ...F }",
        "fragment F on T{a}{...F}",
        "{ a(x: $ v) }",
        "{ a @ skip(if: true) }",
        "query Q() { a }",
        "query Q($a: [ Int ]) { a }",
        "query Q($a: Int!!) { a }",
        "query Q($a: Int = $b) { a }",
        "query Q($a: Int = 1 @d) { a }",
        "{ }",
        "{ a() }",
        "{ a { } }",
        "",
        "   # only a comment",
        "{ a",
        "{ a } }",
        "{ a: }",
        "{ a: b: c }",
        "{ a(x: 1e400) }",
    ];

    #[test]
    fn reads_what_clients_send_as_async_graphql_does() {
        let mut read = 0;
        for text in CORPUS {
            if agrees(text) {
                read += 1;
            }
        }
        // The texts clients send most are read by the fast path, not handed over.
        for text in &CORPUS[..FAST] {
            assert!(fast(text).is_some(), "not read fast: {text:?}");
        }
        assert!(read >= FAST, "only {read} texts read");
    }

    #[test]
    fn agrees_on_random_edits_of_the_corpus() {
        // Deterministic: a SplitMix64 sequence picks the edits.
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        const PIECES: &[&str] = &[
            "{", "}", "(", ")", "[", "]", ":", ",", "...", "..", ".", "\"", "$", "@", "!", "=",
            "#", "\n", "\r", " ", "\t", "\\", "\\u", "-", "0", "1", "e", "on", "on ", "query",
            "fragment", "true", "null", "a", "_", "é", "\u{feff}", "\"\"\"", "1.5", "x:",
        ];
        let mut read = 0;
        let mut tried = 0;
        for text in CORPUS {
            for _ in 0..300 {
                let mut edited: Vec<char> = text.chars().collect();
                for _ in 0..=(next() % 3) {
                    let at = (next() % (edited.len() as u64 + 1)) as usize;
                    match next() % 3 {
                        0 if at < edited.len() => {
                            edited.remove(at);
                        }
                        _ => {
                            let piece = PIECES[(next() % PIECES.len() as u64) as usize];
                            for (i, c) in piece.chars().enumerate() {
                                edited.insert(at + i, c);
                            }
                        }
                    }
                }
                let edited: String = edited.into_iter().collect();
                tried += 1;
                if agrees(&edited) {
                    read += 1;
                }
            }
        }
        // The edits must exercise both outcomes, or the test proves little.
        assert!(read > tried / 10, "{read} of {tried} edits read");
        assert!(read < tried, "every edit read");
    }

    #[test]
    fn positions_count_characters_lines_and_returns() {
        let doc = fast("\u{feff}{ é: a }\r\n{ b }").map(|d| canonical(&d));
        assert!(doc.is_none(), "two anonymous operations are not a document");
        let doc = fast("# x\r\n  { e: a(s: \"ü\") b }").expect("reads");
        let DocumentOperations::Single(op) = &doc.operations else {
            panic!("one operation");
        };
        assert_eq!((op.pos.line, op.pos.column), (2, 3));
        let Selection::Field(b) = &op.node.selection_set.node.items[1].node else {
            panic!("a field");
        };
        // `{ e: a(s: "ü") ` is 15 characters (16 bytes) before `b`.
        assert_eq!((b.pos.line, b.pos.column), (2, 18));
    }

    #[test]
    fn parse_falls_back_for_what_it_does_not_read() {
        let block = "{ a(s: \"\"\"x\"\"\") }";
        assert!(fast(block).is_none());
        assert!(parse(block).is_ok(), "async-graphql reads block strings");
        let error = parse("{ a(").expect_err("does not parse");
        assert!(error.to_string().contains("1:5"), "{error}");
    }
}
