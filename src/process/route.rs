//! `when:` — the condition that routes a record to one destination of a fan-out pipeline.
//!
//! A jq expression evaluated on the processed record. The record goes to the destination when the
//! expression's first output is `true`; `false`, `null`, any other value, no output, a runtime
//! error and a record that is not JSON all mean "not this destination". That is Vector's rule for
//! route conditions too: routing never fails a record, it only decides where it goes (a record no
//! destination takes is counted, see `pipeline`).

use super::jq::{CompileError, JqProgram};

pub struct Condition {
    program: JqProgram,
}

impl Condition {
    pub fn compile(query: &str) -> Result<Self, CompileError> {
        // The fast plan answers projections (objects of fields), not predicates: jaq decides.
        Ok(Self { program: JqProgram::compile(query)?.without_fast_plan() })
    }

    /// Whether the record goes to the destination.
    pub fn holds(&self, data: &[u8]) -> bool {
        matches!(self.program.run_jaq(data).as_deref(), Ok([jaq_json::Val::Bool(true), ..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_true_routes() {
        let c = Condition::compile(r#".level == "error""#).unwrap();
        assert!(c.holds(br#"{"level":"error","msg":"x"}"#));
        assert!(!c.holds(br#"{"level":"info"}"#));
        assert!(!c.holds(b"not json"));
        let c = Condition::compile(".level").unwrap();
        assert!(!c.holds(br#"{"level":"error"}"#), "a string is not true");
        let c = Condition::compile("error(\"x\")").unwrap();
        assert!(!c.holds(b"{}"), "a runtime error routes nowhere");
        let c = Condition::compile("empty").unwrap();
        assert!(!c.holds(b"{}"));
    }
}
