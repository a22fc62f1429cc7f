//! DynamoDB's expression languages: `ConditionExpression`, `KeyConditionExpression` and
//! `FilterExpression` (one grammar, [`Cond`]), `ProjectionExpression` (a list of [`Path`]s) and
//! `UpdateExpression` ([`Update`]), with `#name` and `:value` placeholders.
//!
//! A hand-written lexer and recursive-descent parser ([`parse`]) rather than a parser
//! generator: the grammar is small, and DynamoDB's own error texts (`Invalid
//! ConditionExpression: Syntax error; token: ...`) are easiest to produce from a parser that
//! knows where it is. Placeholders are resolved while parsing against the request's
//! `ExpressionAttributeNames`/`Values` ([`Placeholders`]), which also records which ones
//! were used, so the request can be refused for unused ones as DynamoDB does. Evaluation
//! ([`eval`]), updates ([`update`]) and projections ([`project`]) work on the resolved tree.

pub mod eval;
pub mod parse;
pub mod project;
pub mod update;

use super::error::{validation, Result};
use super::value::Value;
use std::collections::{BTreeSet, HashMap};

/// One step of a document path: `a`, `.b`, `[1]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Name(String),
    Index(usize),
}

/// A document path (`a.b[1].c`), its names resolved.
pub type Path = Vec<Step>;

/// `a.b[1]` for messages.
pub fn show_path(p: &[Step]) -> String {
    let mut s = String::new();
    for (i, step) in p.iter().enumerate() {
        match step {
            Step::Name(n) if i == 0 => s.push_str(n),
            Step::Name(n) => {
                s.push('.');
                s.push_str(n);
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// A value in an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Path(Path),
    Value(Value),
    Size(Path),
    /// Update expressions only.
    IfNotExists(Path, Box<Operand>),
    ListAppend(Box<Operand>, Box<Operand>),
    Plus(Box<Operand>, Box<Operand>),
    Minus(Box<Operand>, Box<Operand>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// A condition (`ConditionExpression`, `FilterExpression`, `KeyConditionExpression`).
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    Cmp(Operand, CmpOp, Operand),
    Between(Operand, Operand, Operand),
    In(Operand, Vec<Operand>),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
    Exists(Path),
    NotExists(Path),
    Type(Path, Operand),
    BeginsWith(Operand, Operand),
    Contains(Operand, Operand),
}

/// An `UpdateExpression`: its four clauses, each applied in this order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Update {
    pub set: Vec<(Path, Operand)>,
    pub remove: Vec<Path>,
    pub add: Vec<(Path, Value)>,
    pub delete: Vec<(Path, Value)>,
}

impl Update {
    /// Every path the update writes, in the order of the expression's clauses.
    pub fn paths(&self) -> Vec<&Path> {
        self.set
            .iter()
            .map(|(p, _)| p)
            .chain(self.remove.iter())
            .chain(self.add.iter().map(|(p, _)| p))
            .chain(self.delete.iter().map(|(p, _)| p))
            .collect()
    }
}

/// A request's `ExpressionAttributeNames` and `ExpressionAttributeValues`, and which of them
/// the request's expressions used.
#[derive(Debug, Default)]
pub struct Placeholders {
    names: HashMap<String, String>,
    values: HashMap<String, Value>,
    used_names: BTreeSet<String>,
    used_values: BTreeSet<String>,
}

impl Placeholders {
    pub fn new(names: HashMap<String, String>, values: HashMap<String, Value>) -> Self {
        Self {
            names,
            values,
            ..Default::default()
        }
    }

    pub(crate) fn name(&mut self, placeholder: &str) -> Result<String> {
        match self.names.get(placeholder) {
            Some(n) => {
                self.used_names.insert(placeholder.to_string());
                Ok(n.clone())
            }
            None => Err(validation(format!(
                "An expression attribute name used in the document path is not defined; attribute name: {placeholder}"
            ))),
        }
    }

    pub(crate) fn value(&mut self, placeholder: &str) -> Result<Value> {
        match self.values.get(placeholder) {
            Some(v) => {
                self.used_values.insert(placeholder.to_string());
                Ok(v.clone())
            }
            None => Err(validation(format!(
                "An expression attribute value used in expression is not defined; attribute value: {placeholder}"
            ))),
        }
    }

    /// After every expression of the request is parsed: refuses names or values given but
    /// not used, as DynamoDB does.
    pub fn check_all_used(&self) -> Result<()> {
        let unused = |all: Vec<&String>, used: &BTreeSet<String>| -> Vec<String> {
            let mut v: Vec<String> = all.into_iter().filter(|k| !used.contains(*k)).cloned().collect();
            v.sort();
            v
        };
        let names = unused(self.names.keys().collect(), &self.used_names);
        if !names.is_empty() {
            return Err(validation(format!(
                "Value provided in ExpressionAttributeNames unused in expressions: keys: {{{}}}",
                names.join(", ")
            )));
        }
        let values = unused(self.values.keys().collect(), &self.used_values);
        if !values.is_empty() {
            return Err(validation(format!(
                "Value provided in ExpressionAttributeValues unused in expressions: keys: {{{}}}",
                values.join(", ")
            )));
        }
        Ok(())
    }
}
