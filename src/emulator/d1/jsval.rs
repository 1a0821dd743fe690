//! SQLite values as D1 hands them out: numbers as JavaScript prints them (integers past 2^53
//! rounded, `1e+300`, `-0` as `0`), blobs as byte arrays in JSON and `X'…'` in dumps.

use serde::ser::{Serialize, SerializeSeq, Serializer};
use serde_json::value::RawValue;

/// One SQLite value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Cell {
    pub fn from_ref(v: rusqlite::types::ValueRef<'_>) -> Self {
        use rusqlite::types::ValueRef;
        match v {
            ValueRef::Null => Cell::Null,
            ValueRef::Integer(i) => Cell::Int(i),
            ValueRef::Real(f) => Cell::Real(f),
            // Valid UTF-8 (nearly always) is checked by the fast path and copied once.
            ValueRef::Text(t) => Cell::Text(match std::str::from_utf8(t) {
                Ok(text) => text.to_owned(),
                Err(_) => String::from_utf8_lossy(t).into_owned(),
            }),
            ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
        }
    }
}

/// `Number.prototype.toString()` for a finite or infinite double.
pub fn js_number(f: f64) -> String {
    if f == 0.0 {
        return "0".into();
    }
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    ryu_js::Buffer::new().format_finite(f).to_string()
}

/// An SQLite integer as D1 carries it: through a JavaScript number.
pub fn js_integer(i: i64) -> String {
    js_number(i as f64)
}

impl Serialize for Cell {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let number = |text: String, s: S| match RawValue::from_string(text) {
            Ok(raw) => raw.serialize(s),
            Err(e) => Err(serde::ser::Error::custom(e)),
        };
        match self {
            Cell::Null => s.serialize_none(),
            // What JavaScript prints of an integer it holds exactly is its digits.
            Cell::Int(i) if i.unsigned_abs() <= 1 << 53 => s.serialize_i64(*i),
            Cell::Int(i) => number(js_integer(*i), s),
            // JSON.stringify writes non-finite numbers as null.
            Cell::Real(f) if !f.is_finite() => s.serialize_none(),
            Cell::Real(f) => number(js_number(*f), s),
            Cell::Text(t) => s.serialize_str(t),
            Cell::Blob(b) => {
                let mut seq = s.serialize_seq(Some(b.len()))?;
                for byte in b {
                    seq.serialize_element(byte)?;
                }
                seq.end()
            }
        }
    }
}

/// A bound parameter from a JSON request body (`params` are strings in the spec; numbers,
/// booleans and null are accepted as D1 accepts them).
pub fn param_from_json(v: &serde_json::Value) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Integer(i64::from(*b)),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Real(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s) => Value::Text(s.clone()),
        other => Value::Text(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_as_javascript_prints_them() {
        assert_eq!(js_integer(i64::MAX), "9223372036854776000");
        assert_eq!(js_integer(9_007_199_254_740_993), "9007199254740992");
        assert_eq!(js_integer(-42), "-42");
        assert_eq!(js_number(1e300), "1e+300");
        assert_eq!(js_number(-0.0), "0");
        assert_eq!(js_number(100.0), "100");
        assert_eq!(js_number(0.1), "0.1");
        assert_eq!(js_number(1.5e-7), "1.5e-7");
        assert_eq!(js_number(f64::INFINITY), "Infinity");
    }

    #[test]
    fn cells_serialize_as_d1_json() {
        let row = vec![
            Cell::Int(i64::MIN),
            Cell::Real(2.5),
            Cell::Text("a\"b".into()),
            Cell::Blob(vec![0, 255]),
            Cell::Null,
        ];
        assert_eq!(
            serde_json::to_string(&row).unwrap(),
            r#"[-9223372036854776000,2.5,"a\"b",[0,255],null]"#
        );
    }
}
