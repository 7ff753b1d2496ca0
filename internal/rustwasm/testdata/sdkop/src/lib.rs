//! A test operator exercising the Rust SDK's API; the record's key is the
//! command, its value the argument. See rustwasm_test.go.

use sluice::{Emitter, Header, Operator, Params, Record, Store, PARTITION_BY_KEY, TIMESTAMP_INHERIT};

#[derive(Default)]
struct Op {
    store: Option<Store>,
    name: String,
    n: i64,
    batch_starts: u32,
}

impl Operator for Op {
    fn init(&mut self, p: &Params) -> Result<(), String> {
        if p.int("fail_init") == Some(1) {
            return Err(format!("init refused: {}", p.string_or("why", "no reason")));
        }
        self.name = p.string_or("name", "def");
        self.n = p.int_or("n", -1);
        self.store = Some(Store::open("s").map_err(|_| "no store s".to_string())?);
        sluice::log(sluice::LEVEL_INFO, "init done");
        Ok(())
    }

    fn batch_start(&mut self) {
        self.batch_starts += 1;
    }

    fn handle(&mut self, r: &Record, out: &mut Emitter) -> Result<(), String> {
        let store = self.store.unwrap();
        let arg = r.value.unwrap_or(&[]);
        match r.key.unwrap_or(&[]) {
            b"fail" => return Err(format!("boom: {}", String::from_utf8_lossy(arg))),
            b"failnomsg" => return Err(String::new()),
            b"panic" => panic!("panicked: {}", String::from_utf8_lossy(arg)),
            b"params" => out.emit(Some(b"params"), Some(format!("{}|{}", self.name, self.n).as_bytes())),
            b"put" => {
                let eq = arg.iter().position(|&b| b == b'=').ok_or("no =")?;
                store.put(&arg[..eq], &arg[eq + 1..])?;
            }
            b"del" => store.delete(arg)?,
            b"get" => {
                // A 2-byte buffer first: get_into grows it.
                let mut buf = Vec::with_capacity(2);
                let found = store.get_into(arg, &mut buf)?;
                let again = store.get(arg)?;
                if found != again.is_some() || (found && again.as_deref() != Some(&buf[..])) {
                    return Err("get and get_into differ".into());
                }
                out.emit(Some(b"get"), if found { Some(&buf) } else { None });
            }
            b"scan" => {
                // value: the entry to stop at, or empty
                let stop_at: usize = std::str::from_utf8(arg).unwrap().parse().unwrap_or(0);
                let mut count = 0;
                let all = store.scan(b"", b"", |k, v| {
                    count += 1;
                    out.emit(Some(k), Some(v));
                    !(stop_at > 0 && count == stop_at)
                })?;
                out.emit(Some(b"scanned"), Some(format!("{} {}", all, count).as_bytes()));
            }
            b"range" => {
                store.scan(b"b", b"d", |k, v| {
                    out.emit(Some(k), Some(v));
                    true
                })?;
            }
            b"fwd" => out.forward(r),
            b"hdr" => {
                if r.headers().count() != r.header_count() {
                    return Err("header count".into());
                }
                for h in r.headers() {
                    out.emit_to(0, 3, 1234, Some(h.key), h.value, &[]);
                }
            }
            b"emithdr" => {
                let hs = [Header { key: b"x", value: None }, Header { key: b"", value: Some(b"y") }];
                out.emit_to(0, PARTITION_BY_KEY, TIMESTAMP_INHERIT, None, Some(arg), &hs);
            }
            b"golden" => {
                // The two outputs of conformance/abi/testdata/output_batch.hex.
                out.emit_to(0, PARTITION_BY_KEY, TIMESTAMP_INHERIT, Some(b"word"), Some(b"1"), &[]);
                out.emit_to(1, 3, 1700000000123, None, Some(b"x"), &[Header { key: b"trace", value: None }]);
            }
            b"badout" => out.emit_to(5, PARTITION_BY_KEY, TIMESTAMP_INHERIT, Some(b"x"), Some(b"y"), &[]),
            b"st" => {
                let s = format!("{} {}", r.stream_time, sluice::stream_time());
                out.emit(Some(b"st"), Some(s.as_bytes()));
            }
            b"tk" => {
                let ts: i64 = std::str::from_utf8(arg).unwrap_or("").parse().unwrap_or(0);
                let k = sluice::time_key(ts);
                let hex: String = k.iter().map(|b| format!("{:02x}", b)).collect();
                let s = format!("{} {:?}", hex, sluice::time_key_decode(&k));
                out.emit(Some(b"tk"), Some(s.as_bytes()));
            }
            b"meta" => {
                let s = format!(
                    "{} {} {} {} {} {}",
                    r.offset, r.timestamp, r.input, r.partition, r.index, self.batch_starts
                );
                out.emit(r.value, Some(s.as_bytes()));
            }
            _ => out.emit(r.key, r.value),
        }
        Ok(())
    }
}

sluice::export_operator!(Op::default());
