use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::*;
use crate::record::Record;

fn path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("transforms").join(rel)
}

fn load(rel: &str) -> Result<WasmProcessor, String> {
    WasmProcessor::load(WasmSettings {
        module: path(rel),
        config_json: "{}".into(),
        max_invocation_bytes: 1 << 20,
        retries: 1,
        timeout: Duration::from_millis(200),
        memory_limit_bytes: 8 << 20,
        lambda_arn: None,
    })
}

fn items(n: usize) -> Vec<Item> {
    (0..n).map(|i| Item::new(Record::new(i as u64, 5, Bytes::from(format!("rec-{i}"))))).collect()
}

#[test]
fn a_hand_written_wat_plugin_transforms_a_batch() {
    let p = load("plugins/uppercase.wat").unwrap();
    let mut failed = Vec::new();
    let out = p.process(items(3), &mut failed);
    assert!(failed.is_empty());
    let data: Vec<_> = out.iter().map(|i| (i.record.seq, i.record.data.clone())).collect();
    assert_eq!(data, vec![(0, Bytes::from("REC-0")), (1, Bytes::from("REC-1")), (2, Bytes::from("REC-2"))]);
}

#[test]
fn hostile_plugins_are_contained_with_the_right_error_codes() {
    let cases = [
        ("fixtures/infinite_loop.wat", "Lambda.FunctionTimedOut"),
        ("fixtures/grow_memory.wat", "Lambda.FunctionError"),
        ("fixtures/trap.wat", "Lambda.FunctionError"),
        ("fixtures/garbage.wat", "Lambda.JsonProcessingException"),
        ("fixtures/drops_record_id.wat", "Lambda.MissingRecordId"),
        ("fixtures/duplicates_record_id.wat", "Lambda.DuplicatedRecordId"),
    ];
    for (fixture, code) in cases {
        let p = load(fixture).unwrap();
        let started = Instant::now();
        let mut failed = Vec::new();
        let out = p.process(items(2), &mut failed);
        assert!(out.is_empty(), "{fixture}");
        assert_eq!(failed.len(), 2, "{fixture}: every record of the invocation fails");
        for f in &failed {
            assert_eq!(f.code, code, "{fixture}: {}", f.message);
            assert_eq!(f.attempts, 2, "{fixture}: retried once");
            assert!(f.lambda_arn.as_deref().is_some_and(|a| a.ends_with(fixture.rsplit('/').next().unwrap_or(""))));
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{fixture} took {:?}", started.elapsed());
    }
}

#[test]
fn response_decoding_checks_every_id() {
    fn entry(id: u64, result: u8, data: &[u8], keys: &[(&str, &str)]) -> Vec<u8> {
        let mut e = id.to_le_bytes().to_vec();
        e.push(result);
        e.extend((data.len() as u32).to_le_bytes());
        e.extend(data);
        e.extend((keys.len() as u16).to_le_bytes());
        for (k, v) in keys {
            e.extend((k.len() as u16).to_le_bytes());
            e.extend(k.as_bytes());
            e.extend((v.len() as u16).to_le_bytes());
            e.extend(v.as_bytes());
        }
        e
    }
    let batch = |entries: &[Vec<u8>]| {
        let mut b = (entries.len() as u32).to_le_bytes().to_vec();
        entries.iter().for_each(|e| b.extend(e));
        b
    };
    let ok = batch(&[entry(1, RESULT_DROPPED, b"", &[]), entry(0, RESULT_OK, b"x", &[("k", "v")])]);
    let out = decode_output(&Bytes::from(ok.clone()), 2).unwrap();
    assert_eq!(out[1].keys, vec![("k".to_string(), "v".to_string())]);
    assert_eq!(
        decode_output(&Bytes::from(batch(&[entry(0, RESULT_OK, b"", &[])])), 2).unwrap_err().code,
        "Lambda.MissingRecordId"
    );
    assert_eq!(
        decode_output(&Bytes::from(batch(&[entry(7, RESULT_OK, b"", &[])])), 1).unwrap_err().code,
        "Lambda.MissingRecordId"
    );
    assert_eq!(
        decode_output(&Bytes::from(batch(&[entry(0, RESULT_OK, b"", &[]), entry(0, RESULT_OK, b"", &[])])), 1)
            .unwrap_err()
            .code,
        "Lambda.DuplicatedRecordId"
    );
    let mut trailing = ok.clone();
    trailing.push(0);
    assert_eq!(decode_output(&Bytes::from(trailing), 2).unwrap_err().code, "Lambda.JsonProcessingException");
    assert_eq!(
        decode_output(&Bytes::copy_from_slice(&ok[..ok.len() - 3]), 2).unwrap_err().code,
        "Lambda.JsonProcessingException"
    );
    assert_eq!(
        decode_output(&Bytes::from(batch(&[entry(0, 9, b"", &[])])), 1).unwrap_err().code,
        "Lambda.JsonProcessingException"
    );
}
