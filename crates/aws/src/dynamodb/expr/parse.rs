//! The lexer and recursive-descent parser of the expression languages. Errors carry
//! DynamoDB's wording (`Invalid ConditionExpression: Syntax error; token: "x", near: "a x"`).
//!
//! Precedence, loosest first: `OR`, `AND`, `NOT`, then comparisons, `BETWEEN`, `IN` and
//! functions; parentheses group. Keywords are case-insensitive, function names are not.

use super::{CmpOp, Cond, Operand, Path, Placeholders, Step, Update};
use crate::dynamodb::error::{validation, DynamoError, Result};
use crate::dynamodb::value::Value;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Name(String),
    Val(String),
    Int(usize),
    Sym(&'static str),
    Eof,
}

struct Token {
    tok: Tok,
    start: usize,
    end: usize,
}

const SYMBOLS: [&str; 14] = ["<>", "<=", ">=", "=", "<", ">", "(", ")", "[", "]", ",", ".", "+", "-"];

fn lex(src: &str, kind: &str) -> Result<Vec<Token>> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let tok = if c == b'#' || c == b':' {
            i += 1;
            while i < b.len() && word(b[i]) {
                i += 1;
            }
            if i == start + 1 {
                return Err(syntax_error(kind, src, &src[start..start + 1], start, i));
            }
            let s = src[start..i].to_string();
            if c == b'#' {
                Tok::Name(s)
            } else {
                Tok::Val(s)
            }
        } else if c.is_ascii_digit() {
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            match src[start..i].parse() {
                Ok(n) => Tok::Int(n),
                Err(_) => return Err(syntax_error(kind, src, &src[start..i], start, i)),
            }
        } else if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && word(b[i]) {
                i += 1;
            }
            Tok::Ident(src[start..i].to_string())
        } else if let Some(sym) = SYMBOLS.iter().find(|s| src[i..].starts_with(**s)) {
            i += sym.len();
            Tok::Sym(sym)
        } else {
            let ch = src[i..].chars().next().unwrap_or('?');
            return Err(validation(format!(
                "Invalid {kind}: Invalid character encountered; character: {ch}, near: \"{}\"",
                &src[start..].chars().take(10).collect::<String>()
            )));
        };
        out.push(Token { tok, start, end: i });
    }
    out.push(Token {
        tok: Tok::Eof,
        start: src.len(),
        end: src.len(),
    });
    Ok(out)
}

fn syntax_error(kind: &str, src: &str, token: &str, near_start: usize, near_end: usize) -> DynamoError {
    validation(format!(
        "Invalid {kind}: Syntax error; token: \"{token}\", near: \"{}\"",
        src.get(near_start..near_end).unwrap_or("")
    ))
}

struct Parser<'a> {
    src: &'a str,
    kind: &'static str,
    toks: Vec<Token>,
    pos: usize,
    ph: &'a mut Placeholders,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str, kind: &'static str, ph: &'a mut Placeholders) -> Result<Self> {
        if src.trim().is_empty() {
            return Err(validation(format!("Invalid {kind}: The expression can not be empty;")));
        }
        Ok(Self {
            src,
            kind,
            toks: lex(src, kind)?,
            pos: 0,
            ph,
        })
    }

    fn peek(&self) -> &Tok {
        &self.toks[self.pos].tok
    }

    fn peek2(&self) -> &Tok {
        &self.toks[(self.pos + 1).min(self.toks.len() - 1)].tok
    }

    fn next(&mut self) -> Tok {
        let t = self.toks[self.pos].tok.clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    /// The syntax error at the current token.
    fn error(&self) -> DynamoError {
        let cur = &self.toks[self.pos];
        let token = if cur.tok == Tok::Eof {
            "<EOF>"
        } else {
            &self.src[cur.start..cur.end]
        };
        let near_start = if self.pos > 0 {
            self.toks[self.pos - 1].start
        } else {
            cur.start
        };
        syntax_error(self.kind, self.src, token, near_start, cur.end)
    }

    fn is_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }

    fn expect_sym(&mut self, sym: &str) -> Result<()> {
        if *self.peek() == Tok::Sym(match_sym(sym)) {
            self.next();
            Ok(())
        } else {
            Err(self.error())
        }
    }

    fn expect_end(&self) -> Result<()> {
        if *self.peek() == Tok::Eof {
            Ok(())
        } else {
            Err(self.error())
        }
    }

    fn path(&mut self) -> Result<Path> {
        let mut path = vec![self.path_name()?];
        loop {
            match self.peek() {
                Tok::Sym(".") => {
                    self.next();
                    let name = self.path_name()?;
                    path.push(name);
                }
                Tok::Sym("[") => {
                    self.next();
                    let Tok::Int(i) = self.next() else {
                        self.pos -= 1;
                        return Err(self.error());
                    };
                    self.expect_sym("]")?;
                    path.push(Step::Index(i));
                }
                _ => return Ok(path),
            }
        }
    }

    fn path_name(&mut self) -> Result<Step> {
        match self.peek().clone() {
            Tok::Ident(s) => {
                self.next();
                Ok(Step::Name(s))
            }
            Tok::Name(p) => {
                self.next();
                Ok(Step::Name(self.ph.name(&p)?))
            }
            _ => Err(self.error()),
        }
    }

    // --- conditions ---

    fn or(&mut self) -> Result<Cond> {
        let mut left = self.and()?;
        while self.is_keyword("OR") {
            self.next();
            let right = self.and()?;
            left = Cond::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Cond> {
        let mut left = self.not()?;
        while self.is_keyword("AND") {
            self.next();
            let right = self.not()?;
            left = Cond::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Cond> {
        if self.is_keyword("NOT") {
            self.next();
            return Ok(Cond::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Cond> {
        if *self.peek() == Tok::Sym("(") {
            self.next();
            let c = self.or()?;
            self.expect_sym(")")?;
            return Ok(c);
        }
        if let (Tok::Ident(f), Tok::Sym("(")) = (self.peek().clone(), self.peek2().clone()) {
            if f != "size" {
                return self.condition_function(&f);
            }
        }
        let left = self.operand()?;
        match self.peek().clone() {
            Tok::Sym(s) if cmp_op(s).is_some() => {
                self.next();
                let right = self.operand()?;
                Ok(Cond::Cmp(left, cmp_op(s).expect("checked"), right))
            }
            Tok::Ident(k) if k.eq_ignore_ascii_case("BETWEEN") => {
                self.next();
                let lo = self.operand()?;
                if !self.is_keyword("AND") {
                    return Err(self.error());
                }
                self.next();
                let hi = self.operand()?;
                Ok(Cond::Between(left, lo, hi))
            }
            Tok::Ident(k) if k.eq_ignore_ascii_case("IN") => {
                self.next();
                self.expect_sym("(")?;
                let mut list = vec![self.operand()?];
                while *self.peek() == Tok::Sym(",") {
                    self.next();
                    list.push(self.operand()?);
                }
                self.expect_sym(")")?;
                Ok(Cond::In(left, list))
            }
            _ => Err(self.error()),
        }
    }

    fn arguments(&mut self, update: bool) -> Result<Vec<Operand>> {
        self.expect_sym("(")?;
        let mut args = vec![if update { self.update_value()? } else { self.operand()? }];
        while *self.peek() == Tok::Sym(",") {
            self.next();
            args.push(if update { self.update_value()? } else { self.operand()? });
        }
        self.expect_sym(")")?;
        Ok(args)
    }

    fn arity(&self, f: &str, args: &[Operand], n: usize) -> Result<()> {
        if args.len() == n {
            Ok(())
        } else {
            Err(validation(format!(
                "Invalid {}: Incorrect number of operands for operator or function; operator or function: {f}, number of operands: {}",
                self.kind,
                args.len()
            )))
        }
    }

    fn needs_path(&self, f: &str, op: Operand) -> Result<Path> {
        match op {
            Operand::Path(p) => Ok(p),
            _ => Err(validation(format!(
                "Invalid {}: Operator or function requires a document path; operator or function: {f}",
                self.kind
            ))),
        }
    }

    fn condition_function(&mut self, f: &str) -> Result<Cond> {
        if !matches!(
            f,
            "attribute_exists" | "attribute_not_exists" | "attribute_type" | "begins_with" | "contains"
        ) {
            return Err(validation(format!(
                "Invalid {}: Invalid function name; function: {f}",
                self.kind
            )));
        }
        self.next();
        let mut args = self.arguments(false)?;
        Ok(match f {
            "attribute_exists" | "attribute_not_exists" => {
                self.arity(f, &args, 1)?;
                let p = self.needs_path(f, args.remove(0))?;
                if f == "attribute_exists" {
                    Cond::Exists(p)
                } else {
                    Cond::NotExists(p)
                }
            }
            "attribute_type" => {
                self.arity(f, &args, 2)?;
                let t = args.remove(1);
                let p = self.needs_path(f, args.remove(0))?;
                if let Operand::Value(v) = &t {
                    let ok = matches!(v, Value::S(s) if ["S","N","B","BOOL","NULL","L","M","SS","NS","BS"].contains(&s.as_str()));
                    if !ok {
                        let shown = match v {
                            Value::S(s) => s.clone(),
                            other => other.type_name().to_string(),
                        };
                        return Err(validation(format!(
                            "Invalid {}: Invalid attribute type name found; type: {shown}, valid types: {{B,NULL,SS,BOOL,L,BS,N,NS,S,M}}",
                            self.kind
                        )));
                    }
                }
                Cond::Type(p, t)
            }
            "begins_with" => {
                self.arity(f, &args, 2)?;
                let prefix = args.remove(1);
                if let Operand::Value(v) = &prefix {
                    if !matches!(v, Value::S(_) | Value::B(_)) {
                        return Err(self.operand_type(f, v));
                    }
                }
                Cond::BeginsWith(args.remove(0), prefix)
            }
            _ => {
                self.arity(f, &args, 2)?;
                let needle = args.remove(1);
                Cond::Contains(args.remove(0), needle)
            }
        })
    }

    fn operand_type(&self, f: &str, v: &Value) -> DynamoError {
        validation(format!(
            "Invalid {}: Incorrect operand type for operator or function; operator or function: {f}, operand type: {}",
            self.kind,
            v.type_name()
        ))
    }

    /// A condition's operand: a path, a `:value`, `size(path)`.
    fn operand(&mut self) -> Result<Operand> {
        match self.peek().clone() {
            Tok::Val(v) => {
                self.next();
                Ok(Operand::Value(self.ph.value(&v)?))
            }
            Tok::Ident(f) if *self.peek2() == Tok::Sym("(") => {
                if f != "size" {
                    return Err(validation(format!(
                        "Invalid {}: Invalid function name; function: {f}",
                        self.kind
                    )));
                }
                self.next();
                let mut args = self.arguments(false)?;
                self.arity("size", &args, 1)?;
                Ok(Operand::Size(self.needs_path("size", args.remove(0))?))
            }
            Tok::Ident(_) | Tok::Name(_) => Ok(Operand::Path(self.path()?)),
            _ => Err(self.error()),
        }
    }

    // --- updates ---

    /// The right side of `SET path = ...`: a term, or two joined by `+` or `-`.
    fn update_value(&mut self) -> Result<Operand> {
        let left = self.update_term()?;
        match self.peek() {
            Tok::Sym("+") => {
                self.next();
                Ok(Operand::Plus(Box::new(left), Box::new(self.update_term()?)))
            }
            Tok::Sym("-") => {
                self.next();
                Ok(Operand::Minus(Box::new(left), Box::new(self.update_term()?)))
            }
            _ => Ok(left),
        }
    }

    fn update_term(&mut self) -> Result<Operand> {
        if let (Tok::Ident(f), Tok::Sym("(")) = (self.peek().clone(), self.peek2().clone()) {
            match f.as_str() {
                "if_not_exists" => {
                    self.next();
                    let mut args = self.arguments(true)?;
                    self.arity(&f, &args, 2)?;
                    let fallback = args.remove(1);
                    let p = self.needs_path(&f, args.remove(0))?;
                    return Ok(Operand::IfNotExists(p, Box::new(fallback)));
                }
                "list_append" => {
                    self.next();
                    let mut args = self.arguments(true)?;
                    self.arity(&f, &args, 2)?;
                    let b = args.remove(1);
                    return Ok(Operand::ListAppend(Box::new(args.remove(0)), Box::new(b)));
                }
                _ => {
                    return Err(validation(format!(
                        "Invalid {}: Invalid function name; function: {f}",
                        self.kind
                    )))
                }
            }
        }
        match self.peek().clone() {
            Tok::Val(v) => {
                self.next();
                Ok(Operand::Value(self.ph.value(&v)?))
            }
            Tok::Ident(_) | Tok::Name(_) => Ok(Operand::Path(self.path()?)),
            _ => Err(self.error()),
        }
    }

    fn update(&mut self) -> Result<Update> {
        let mut u = Update::default();
        let mut seen: Vec<String> = Vec::new();
        while *self.peek() != Tok::Eof {
            let Tok::Ident(kw) = self.peek().clone() else {
                return Err(self.error());
            };
            let kw = kw.to_ascii_uppercase();
            if !["SET", "REMOVE", "ADD", "DELETE"].contains(&kw.as_str()) {
                return Err(self.error());
            }
            if seen.contains(&kw) {
                return Err(validation(format!(
                    "Invalid UpdateExpression: The \"{kw}\" section can only be used once in an update expression;"
                )));
            }
            seen.push(kw.clone());
            self.next();
            loop {
                match kw.as_str() {
                    "SET" => {
                        let p = self.path()?;
                        self.expect_sym("=")?;
                        let v = self.update_value()?;
                        u.set.push((p, v));
                    }
                    "REMOVE" => {
                        let p = self.path()?;
                        u.remove.push(p);
                    }
                    _ => {
                        let p = self.path()?;
                        let Tok::Val(v) = self.peek().clone() else {
                            return Err(self.error());
                        };
                        self.next();
                        let v = self.ph.value(&v)?;
                        let ok = if kw == "ADD" {
                            matches!(v, Value::N(_) | Value::SS(_) | Value::NS(_) | Value::BS(_))
                        } else {
                            matches!(v, Value::SS(_) | Value::NS(_) | Value::BS(_))
                        };
                        if !ok {
                            return Err(validation(format!(
                                "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: {kw}, operand type: {}",
                                long_type_name(&v)
                            )));
                        }
                        if kw == "ADD" {
                            u.add.push((p, v));
                        } else {
                            u.delete.push((p, v));
                        }
                    }
                }
                if *self.peek() == Tok::Sym(",") {
                    self.next();
                } else {
                    break;
                }
            }
        }
        Ok(u)
    }
}

/// The type names DynamoDB's update-expression errors use (`STRING`, `NUMBER`, ...).
pub(crate) fn long_type_name(v: &Value) -> &'static str {
    match v {
        Value::S(_) => "STRING",
        Value::N(_) => "NUMBER",
        Value::B(_) => "BINARY",
        Value::Bool(_) => "BOOLEAN",
        Value::Null => "NULL",
        Value::L(_) => "LIST",
        Value::M(_) => "MAP",
        Value::SS(_) => "STRING SET",
        Value::NS(_) => "NUMBER SET",
        Value::BS(_) => "BINARY SET",
    }
}

fn match_sym(s: &str) -> &'static str {
    SYMBOLS.iter().find(|x| **x == s).copied().unwrap_or("")
}

fn cmp_op(s: &str) -> Option<CmpOp> {
    Some(match s {
        "=" => CmpOp::Eq,
        "<>" => CmpOp::Ne,
        "<" => CmpOp::Lt,
        "<=" => CmpOp::Le,
        ">" => CmpOp::Gt,
        ">=" => CmpOp::Ge,
        _ => return None,
    })
}

/// Parses a condition; `kind` names the request field in errors (`ConditionExpression`,
/// `FilterExpression`, `KeyConditionExpression`).
pub fn condition(src: &str, kind: &'static str, ph: &mut Placeholders) -> Result<Cond> {
    let mut p = Parser::new(src, kind, ph)?;
    let c = p.or()?;
    p.expect_end()?;
    Ok(c)
}

/// Parses a `ProjectionExpression`: paths separated by commas.
pub fn projection(src: &str, ph: &mut Placeholders) -> Result<Vec<Path>> {
    let mut p = Parser::new(src, "ProjectionExpression", ph)?;
    let mut paths = vec![p.path()?];
    while *p.peek() == Tok::Sym(",") {
        p.next();
        paths.push(p.path()?);
    }
    p.expect_end()?;
    Ok(paths)
}

/// Parses an `UpdateExpression`.
pub fn update(src: &str, ph: &mut Placeholders) -> Result<Update> {
    let mut p = Parser::new(src, "UpdateExpression", ph)?;
    let u = p.update()?;
    p.expect_end()?;
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamodb::number::Number;
    use std::collections::HashMap;

    pub(crate) fn ph() -> Placeholders {
        let names = HashMap::from([("#n".to_string(), "name".to_string()), ("#s".into(), "status".into())]);
        let values = HashMap::from([
            (":one".to_string(), Value::N(Number::parse("1").unwrap())),
            (":two".into(), Value::N(Number::parse("2").unwrap())),
            (":s".into(), Value::S("x".into())),
            (":t".into(), Value::S("N".into())),
            (":l".into(), Value::L(vec![Value::S("z".into())])),
            (":ss".into(), Value::SS(vec!["a".into()])),
        ]);
        Placeholders::new(names, values)
    }

    #[test]
    fn precedence_and_grouping() {
        let mut p = ph();
        let c = condition("a = :one OR b = :two AND NOT c < :one", "ConditionExpression", &mut p).unwrap();
        let Cond::Or(_, right) = c else { panic!("{c:?}") };
        let Cond::And(_, not) = *right else { panic!() };
        assert!(matches!(*not, Cond::Not(_)));
        let c = condition("(a = :one OR b = :two) and c <> :one", "ConditionExpression", &mut p).unwrap();
        assert!(matches!(c, Cond::And(..)));
    }

    #[test]
    fn paths_names_and_functions() {
        let mut p = ph();
        let c = condition(
            "attribute_exists(#n.first[2].x) AND begins_with(#s, :s) AND size(a) BETWEEN :one AND :two AND a IN (:one, :two) AND attribute_type(b, :t) AND contains(l, :s)",
            "ConditionExpression",
            &mut p,
        )
        .unwrap();
        let text = format!("{c:?}");
        assert!(
            text.contains("Name(\"name\"), Name(\"first\"), Index(2), Name(\"x\")"),
            "{text}"
        );
        p.check_all_used().unwrap_err(); // :l and :ss were not used
    }

    #[test]
    fn errors_in_dynamodbs_words() {
        let err = |src: &str| {
            condition(src, "ConditionExpression", &mut ph())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("a ="),
            "Invalid ConditionExpression: Syntax error; token: \"<EOF>\", near: \"=\""
        );
        assert_eq!(
            err("a == :one"),
            "Invalid ConditionExpression: Syntax error; token: \"=\", near: \"==\""
        );
        assert_eq!(err(""), "Invalid ConditionExpression: The expression can not be empty;");
        assert_eq!(
            err("a = :nope"),
            "An expression attribute value used in expression is not defined; attribute value: :nope"
        );
        assert_eq!(
            err("#zz = :one"),
            "An expression attribute name used in the document path is not defined; attribute name: #zz"
        );
        assert_eq!(
            err("begins_with(a)"),
            "Invalid ConditionExpression: Incorrect number of operands for operator or function; operator or function: begins_with, number of operands: 1"
        );
        assert_eq!(
            err("begins_with(a, :one)"),
            "Invalid ConditionExpression: Incorrect operand type for operator or function; operator or function: begins_with, operand type: N"
        );
        assert_eq!(
            err("nope(a)"),
            "Invalid ConditionExpression: Invalid function name; function: nope"
        );
        assert!(err("attribute_exists(:one)").contains("requires a document path"));
        assert!(err("attribute_type(a, :s)").contains("Invalid attribute type name found; type: x"));
    }

    #[test]
    fn update_clauses() {
        let mut p = ph();
        let u = update(
            "SET a = a + :one, b = if_not_exists(b, :two), l = list_append(l, :l) REMOVE c, d[1] ADD n :one, s :ss DELETE t :ss",
            &mut p,
        )
        .unwrap();
        assert_eq!(u.set.len(), 3);
        assert_eq!(u.remove.len(), 2);
        assert_eq!(u.add.len(), 2);
        assert_eq!(u.delete.len(), 1);
        assert!(matches!(u.set[0].1, Operand::Plus(..)));
        let e = update("SET a = :one SET b = :two", &mut ph()).unwrap_err().to_string();
        assert!(e.contains("The \"SET\" section can only be used once"), "{e}");
        let e = update("ADD a :s", &mut ph()).unwrap_err().to_string();
        assert!(e.contains("operator: ADD, operand type: STRING"), "{e}");
        assert!(update("SET", &mut ph()).is_err());
        assert!(update("UPSERT a = :one", &mut ph()).is_err());
    }

    #[test]
    fn projections() {
        let mut p = ph();
        let paths = projection("a, #n.b[0], c", &mut p).unwrap();
        assert_eq!(paths.len(), 3);
        assert_eq!(
            paths[1],
            vec![Step::Name("name".into()), Step::Name("b".into()), Step::Index(0)]
        );
        assert!(projection("a,", &mut ph()).is_err());
    }
}
