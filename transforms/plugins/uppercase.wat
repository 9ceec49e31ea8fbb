;; A transform plugin written by hand in WebAssembly text, without the Rust SDK, to show that the
;; ABI (transforms/ABI.md) is language-neutral. It upper-cases ASCII letters in every record and
;; returns each one as Ok with no partition keys.
;;
;; Memory layout: input batches are written at 1 MiB (up to 1.5 MiB), output is built at 2.5 MiB.
;; Keep buffer_size_mb at 1 (the default) with this plugin.
(module
  (memory (export "memory") 64)
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_alloc") (param $len i32) (result i32) (i32.const 1048576))
  (func (export "sluice_process") (param $ptr i32) (param $len i32) (result i64)
    (local $in i32) (local $out i32) (local $count i32) (local $dlen i32) (local $end i32) (local $c i32)
    (local.set $in (local.get $ptr))
    (local.set $out (i32.const 2621440))
    ;; u32 count, copied through
    (local.set $count (i32.load (local.get $in)))
    (i32.store (local.get $out) (local.get $count))
    (local.set $in (i32.add (local.get $in) (i32.const 4)))
    (local.set $out (i32.add (local.get $out) (i32.const 4)))
    (block $done
      (loop $records
        (br_if $done (i32.eqz (local.get $count)))
        ;; in: u64 id, i64 arrival, u32 len, data   out: u64 id, u8 result, u32 len, data, u16 keys
        (i64.store (local.get $out) (i64.load (local.get $in)))
        (i32.store8 (i32.add (local.get $out) (i32.const 8)) (i32.const 0))
        (local.set $dlen (i32.load (i32.add (local.get $in) (i32.const 16))))
        (i32.store (i32.add (local.get $out) (i32.const 9)) (local.get $dlen))
        (local.set $in (i32.add (local.get $in) (i32.const 20)))
        (local.set $out (i32.add (local.get $out) (i32.const 13)))
        (local.set $end (i32.add (local.get $in) (local.get $dlen)))
        (block $copied
          (loop $bytes
            (br_if $copied (i32.ge_u (local.get $in) (local.get $end)))
            (local.set $c (i32.load8_u (local.get $in)))
            (if (i32.and (i32.ge_u (local.get $c) (i32.const 97)) (i32.le_u (local.get $c) (i32.const 122)))
              (then (local.set $c (i32.sub (local.get $c) (i32.const 32)))))
            (i32.store8 (local.get $out) (local.get $c))
            (local.set $in (i32.add (local.get $in) (i32.const 1)))
            (local.set $out (i32.add (local.get $out) (i32.const 1)))
            (br $bytes)))
        (i32.store16 (local.get $out) (i32.const 0))
        (local.set $out (i32.add (local.get $out) (i32.const 2)))
        (local.set $count (i32.sub (local.get $count) (i32.const 1)))
        (br $records)))
    (i64.or (i64.shl (i64.const 2621440) (i64.const 32))
            (i64.extend_i32_u (i32.sub (local.get $out) (i32.const 2621440))))))
