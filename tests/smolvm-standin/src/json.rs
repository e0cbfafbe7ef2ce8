//! A hand-written JSON encoder for the two documents the stand-in prints.

use crate::machine::Machine;

pub fn string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The object `status --json` prints and `ls --json` lists.
pub fn machine(out: &mut String, m: &Machine) {
    out.push_str("{\"name\":");
    string(out, &m.name);
    out.push_str(",\"state\":");
    string(out, m.state.as_str());
    out.push_str(",\"image\":");
    match &m.image {
        Some(image) => string(out, image),
        None => out.push_str("null"),
    }
    out.push_str(&format!(
        ",\"cpus\":{},\"mem\":{},\"net\":{},\"labels\":{{",
        m.cpus, m.mem, m.net
    ));
    for (i, (k, v)) in m.labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(out, k);
        out.push(':');
        string(out, v);
    }
    out.push_str("},\"created_at\":");
    string(out, &rfc3339(m.created_at));
    out.push('}');
}

pub fn machines(ms: &[Machine]) -> String {
    let mut out = String::from("[");
    for (i, m) in ms.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        machine(&mut out, m);
    }
    out.push(']');
    out
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch (UTC), using Howard
/// Hinnant's days-to-civil algorithm.
pub fn rfc3339(epoch_seconds: u64) -> String {
    let days = (epoch_seconds / 86_400) as i64;
    let secs = epoch_seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        let mut out = String::new();
        string(&mut out, "a\"b\\c\n\u{1}\u{7f}é");
        assert_eq!(out, r#""a\"b\\c\u000a\u0001\u007fé""#);
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }
}
