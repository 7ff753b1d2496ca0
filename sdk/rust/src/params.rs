//! The job's parameters.

/// The job file's `parameters`, as JSON bytes (the SDK's copy, kept for
/// the instance's life; possibly empty). [`Params::raw`] gives the JSON to
/// parse with any JSON library; the getters handle a FLAT object of
/// strings and integers: they look at top-level keys only (nested objects
/// and arrays are skipped), do not check the JSON strictly, and return
/// `None` when the key is absent, the document is not an object, or the
/// value has another type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    json: Vec<u8>,
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// Skips a string starting at its opening quote.
    fn skip_string(&mut self) -> Option<()> {
        self.at += 1;
        while let Some(b) = self.peek() {
            if b == b'\\' {
                self.at += 2;
                continue;
            }
            self.at += 1;
            if b == b'"' {
                return Some(());
            }
        }
        None
    }

    /// Skips any value (loosely: nested brackets matched, strings skipped).
    fn skip_value(&mut self) -> Option<()> {
        self.skip_ws();
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' | b'[' => {
                let mut depth = 0;
                while let Some(b) = self.peek() {
                    if b == b'"' {
                        self.skip_string()?;
                        continue;
                    }
                    self.at += 1;
                    if b == b'{' || b == b'[' {
                        depth += 1;
                    }
                    if (b == b'}' || b == b']') && {
                        depth -= 1;
                        depth == 0
                    } {
                        return Some(());
                    }
                }
                None
            }
            _ => {
                while let Some(b) = self.peek() {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.at += 1;
                }
                Some(())
            }
        }
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let s = self.b.get(at..at + 4)?;
        let s = std::str::from_utf8(s).ok()?;
        if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(s, 16).ok()
    }

    /// Decodes the string at its opening quote into bytes (UTF-8 for
    /// escapes; invalid surrogates become U+FFFD).
    fn string(&mut self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.at += 1;
        loop {
            let b = self.peek()?;
            self.at += 1;
            if b == b'"' {
                return Some(out);
            }
            if b != b'\\' {
                out.push(b);
                continue;
            }
            let e = self.peek()?;
            self.at += 1;
            let cp = match e {
                b'b' => 8,
                b'f' => 12,
                b'n' => 10,
                b'r' => 13,
                b't' => 9,
                b'u' => {
                    let mut cp = self.hex4(self.at)?;
                    self.at += 4;
                    if (0xD800..0xDC00).contains(&cp)
                        && self.b.get(self.at) == Some(&b'\\')
                        && self.b.get(self.at + 1) == Some(&b'u')
                    {
                        if let Some(lo) = self.hex4(self.at + 2) {
                            if (0xDC00..0xE000).contains(&lo) {
                                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                                self.at += 6;
                            }
                        }
                    }
                    cp
                }
                other => other as u32,
            };
            let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
            let mut tmp = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
        }
    }
}

impl Params {
    /// Parameters from JSON bytes.
    pub fn new(json: Vec<u8>) -> Params {
        Params { json }
    }

    pub(crate) const fn empty() -> Params {
        Params { json: Vec::new() }
    }

    /// The raw JSON (empty when the job has no parameters).
    pub fn raw(&self) -> &[u8] {
        &self.json
    }

    /// Finds key among the top-level members; the cursor is then at the
    /// start of its value.
    fn find(&self, key: &str) -> Option<Cursor<'_>> {
        let mut c = Cursor { b: &self.json, at: 0 };
        c.skip_ws();
        if c.peek()? != b'{' {
            return None;
        }
        c.at += 1;
        loop {
            c.skip_ws();
            if c.peek()? != b'"' {
                return None;
            }
            let name = c.string()?;
            c.skip_ws();
            if c.peek()? != b':' {
                return None;
            }
            c.at += 1;
            c.skip_ws();
            if name == key.as_bytes() {
                return Some(c);
            }
            c.skip_value()?;
            c.skip_ws();
            if c.peek()? != b',' {
                return None;
            }
            c.at += 1;
        }
    }

    /// The string value of key (escapes decoded; bytes that are not UTF-8
    /// are replaced by U+FFFD).
    pub fn string(&self, key: &str) -> Option<String> {
        let mut c = self.find(key)?;
        if c.peek()? != b'"' {
            return None;
        }
        let b = c.string()?;
        Some(String::from_utf8_lossy(&b).into_owned())
    }

    /// The integer value of key: a JSON integer in i64 range (no fraction
    /// or exponent).
    pub fn int(&self, key: &str) -> Option<i64> {
        let mut c = self.find(key)?;
        let start = c.at;
        if c.peek() == Some(b'-') {
            c.at += 1;
        }
        while let Some(b'0'..=b'9') = c.peek() {
            c.at += 1;
        }
        let s = std::str::from_utf8(&c.b[start..c.at]).ok()?;
        match c.peek() {
            None | Some(b',' | b'}' | b' ' | b'\t' | b'\n' | b'\r') => {}
            _ => return None,
        }
        if s.is_empty() || s == "-" {
            return None;
        }
        s.parse().ok()
    }

    /// The value of key as a string, or def.
    pub fn string_or(&self, key: &str, def: &str) -> String {
        self.string(key).unwrap_or_else(|| def.to_string())
    }

    /// The value of key as an integer, or def.
    pub fn int_or(&self, key: &str, def: i64) -> i64 {
        self.int(key).unwrap_or(def)
    }
}
