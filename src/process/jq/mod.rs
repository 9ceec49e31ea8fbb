//! jq for sluice: one compiled program shared by metadata extraction (partition keys) and the jq
//! transform processor.
//!
//! Queries compile with jaq (jq in Rust, jq 1.6 semantics for what Firehose users write,
//! `strptime`/`strftime` included). Building jaq's value tree for every record is the slowest step
//! of a partitioned pipeline, so queries of the shape Firehose's documentation teaches —
//! `{customer_id: .customer_id, year: .ts[0:4]}`, an object built from paths — also get a
//! [`fast`] plan that reads only the fields it needs with a pull parser. Any record the plan
//! cannot answer exactly as jaq would (a float, a nested value, a record that is not an object)
//! goes through jaq, so both paths always agree (a differential test holds them to it).

mod errors;
pub mod fast;
pub mod transform;

use jaq_core::data::JustLut;
use jaq_core::load::{Arena, File, Loader};
use jaq_core::{unwrap_valr, Compiler, Ctx, Native, Vars};
use jaq_json::Val;

pub use errors::CompileError;
use fast::{FastPlan, FastValue};

type Filter = jaq_core::compile::Filter<Native<JustLut<Val>>>;

/// A compiled jq query.
pub struct JqProgram {
    filter: Filter,
    fast: Option<FastPlan>,
}

/// What one record's query produced.
pub enum Outputs<'a> {
    /// From the fast plan: one object, its fields in query order.
    Fields(Vec<(&'a str, FastValue<'a>)>),
    /// From jaq: every value the query produced, in order.
    Values(Vec<Val>),
}

impl JqProgram {
    /// Compiles the query, or explains in plain words (with the column) why it does not compile.
    pub fn compile(query: &str) -> Result<Self, CompileError> {
        let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
        let funs = jaq_core::funs().chain(jaq_std::funs()).chain(jaq_json::funs());
        let arena = Arena::default();
        let modules = Loader::new(defs)
            .load(&arena, File { code: query, path: () })
            .map_err(|errors| errors::load_error(query, &errors))?;
        let filter = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errors| errors::compile_error(query, &errors))?;
        Ok(Self { filter, fast: FastPlan::parse(query) })
    }

    /// The same program answering every record through jaq (benchmarks compare the two).
    pub fn without_fast_plan(mut self) -> Self {
        self.fast = None;
        self
    }

    /// Whether the query has a fast plan (benchmarks and tests report it).
    pub fn has_fast_plan(&self) -> bool {
        self.fast.is_some()
    }

    /// Runs the query on one record's JSON.
    pub fn run<'a>(&'a self, data: &'a [u8]) -> Result<Outputs<'a>, String> {
        if let Some(fields) = self.fast.as_ref().and_then(|plan| plan.run(data)) {
            return Ok(Outputs::Fields(fields));
        }
        self.run_jaq(data).map(Outputs::Values)
    }

    /// Runs the query through jaq only (the reference the fast plan is tested against).
    pub fn run_jaq(&self, data: &[u8]) -> Result<Vec<Val>, String> {
        let input = jaq_json::read::parse_single(data).map_err(|e| format!("the record is not valid JSON: {e}"))?;
        let ctx = Ctx::<JustLut<Val>>::new(&self.filter.lut, Vars::new([]));
        let mut values = Vec::with_capacity(1);
        for value in self.filter.id.run((ctx, input)).map(unwrap_valr) {
            values.push(value.map_err(|e| format!("jq query failed: {e}"))?);
        }
        Ok(values)
    }
}

/// Writes a jaq value as compact JSON, exactly as `jq -c` would print it.
pub fn write_json(out: &mut Vec<u8>, value: &Val) -> Result<(), String> {
    jaq_json::write::write(out, &jaq_json::write::Pp::default(), 0, value)
        .map_err(|e| format!("cannot write the query's output: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests;
