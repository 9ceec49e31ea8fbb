use super::*;

/// What jq -c prints for the record, through whichever path `run` takes.
fn printed(program: &JqProgram, data: &[u8]) -> Result<Vec<String>, String> {
    Ok(match program.run(data)? {
        Outputs::Fields(fields) => {
            let mut json = Vec::new();
            fast::write_fields(&mut json, &fields);
            vec![String::from_utf8_lossy(&json).into_owned()]
        }
        Outputs::Values(values) => values.iter().map(jaq_printed).collect(),
    })
}

fn jaq_printed(v: &Val) -> String {
    let mut out = Vec::new();
    write_json(&mut out, v).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn reference(program: &JqProgram, data: &[u8]) -> Result<Vec<String>, String> {
    Ok(program.run_jaq(data)?.iter().map(jaq_printed).collect())
}

const QUERIES: &[&str] = &[
    "{customer_id: .customer_id, year: .ts[0:4]}",
    r#"{a: .a, "b c": .x.y, d: .x["z"], e: .s[2:], f: .s[:3], g: .s[1:1]}"#,
    "{customer_id}",
    "{n: .n, b: .b, deep: .x.y.z}",
    "{}",
];

const RECORDS: &[&str] = &[
    r#"{"customer_id":"c-42","ts":"2026-07-13T14:05:09Z"}"#,
    r#"{"customer_id":7,"ts":"20"}"#,
    r#"{"customer_id":-12,"ts":null}"#,
    r#"{"customer_id":1.5,"ts":"x"}"#,
    r#"{"customer_id":1e3}"#,
    r#"{"customer_id":-0}"#,
    r#"{"customer_id":12345678901234567890123}"#,
    r#"{"customer_id":{"nested":true}}"#,
    r#"{"customer_id":[1,2]}"#,
    r#"{"customer_id":"tab\tquote\"slash\\ctl\u0001 del\u007f é 😀","ts":"héllo wörld"}"#,
    r#"{"customer_id":"a\u0062c","ts":"😀😀😀😀😀"}"#,
    r#"{"customer_id":"first","customer_id":"second"}"#,
    r#"{"x":{"y":{"z":1}},"x":{"q":2}}"#,
    r#"{"a":true,"b":false,"n":null,"x":{"y":"deep","z":"zz"},"s":"abcdef"}"#,
    r#"{"x":"not an object"}"#,
    r#"{"x":{"y":5}}"#,
    r#"{"ts":5}"#,
    r#"{"ts":true}"#,
    r#"{"s":"ab"}"#,
    r#"  {"customer_id":"spaces"}  "#,
    r#"{"customer_id":"trailing"} x"#,
    r#"{"customer_id":"unterminated"#,
    r#"[1,2,3]"#,
    r#""just a string""#,
    r#"null"#,
    r#"{"lone":"\ud800"}"#,
    r#"{"customer_id":"\u00e9"}"#,
    "not json",
    "",
];

#[test]
fn the_fast_plan_prints_exactly_what_jaq_prints() {
    for query in QUERIES {
        let program = JqProgram::compile(query).unwrap();
        assert!(program.has_fast_plan(), "{query} should have a fast plan");
        for record in RECORDS {
            let fast = printed(&program, record.as_bytes());
            let slow = reference(&program, record.as_bytes());
            match (&fast, &slow) {
                (Ok(f), Ok(s)) => assert_eq!(f, s, "query {query} on {record}"),
                (Err(_), Err(_)) => {}
                _ => panic!("query {query} on {record}: fast {fast:?} but jaq {slow:?}"),
            }
        }
    }
}

#[test]
fn only_the_object_of_paths_shape_gets_a_plan() {
    for query in
        [".a", "{a: .a | tostring}", "{a: .a[0]}", "{a: .a, a: .b}", "{(.k): .v}", "{a: .s[-2:]}", "{a: \"lit\"}"]
    {
        assert!(!JqProgram::compile(query).unwrap().has_fast_plan(), "{query}");
    }
    for query in ["{ a : .a , b:.c.d }", "{a: .\"x y\"}", "{a: .x.[\"y\"]}", "{a: .ts[ 0 : 4 ]}"] {
        assert!(JqProgram::compile(query).unwrap().has_fast_plan(), "{query}");
    }
}

#[test]
fn compile_errors_are_plain_words_with_a_column() {
    let e = JqProgram::compile("{customer_id: .customer_id").err().unwrap();
    assert_eq!(e.column, Some(27), "{e}");
    assert!(e.to_string().contains("closing `}`"), "{e}");
    assert!(!e.to_string().contains("File {"), "{e}");
    let e = JqProgram::compile("{a: .a | lenght}").err().unwrap();
    assert_eq!(
        e.to_string(),
        "jq query, column 10: unknown filter `lenght` (is it a typo, or a jq function sluice's jq does not have?)"
    );
    let e = JqProgram::compile("{a: $x}").err().unwrap();
    assert_eq!(e.column, Some(5), "{e}");
    let e = JqProgram::compile("{a: .a,,}").err().unwrap();
    assert!(e.column.is_some(), "{e}");
}
