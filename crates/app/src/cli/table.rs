//! Plain aligned text tables for the CLI's human output, and small JSON accessors.

use serde_json::Value;

/// Renders rows under headers, columns padded to their widest cell (the last one unpadded).
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (index, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(index) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: &mut dyn Iterator<Item = &str>, out: &mut String| {
        let cells: Vec<&str> = cells.collect();
        let last = cells.len().saturating_sub(1);
        let mut text = String::new();
        for (index, cell) in cells.iter().enumerate() {
            if index == last {
                text.push_str(cell);
            } else {
                let width = widths.get(index).copied().unwrap_or(0);
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied(), &mut out);
    for row in rows {
        line(&mut row.iter().map(String::as_str), &mut out);
    }
    out
}

/// A string field (`-` when missing or null); numbers and booleans are printed as they are.
pub fn field(value: &Value, key: &str) -> String {
    text(value.get(key))
}

/// A nested field by path (`status.phase`).
pub fn path(value: &Value, dotted: &str) -> String {
    let mut current = Some(value);
    for key in dotted.split('.') {
        current = current.and_then(|v| v.get(key));
    }
    text(current)
}

fn text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) if s.is_empty() => "-".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.is_empty() => "-".to_string(),
        Some(Value::Array(items)) => {
            items.iter().map(|i| text(Some(i))).collect::<Vec<_>>().join(",")
        }
        Some(other) => other.to_string(),
    }
}

/// Shortens a timestamp to `YYYY-MM-DD HH:MM:SS`.
pub fn short_time(value: &str) -> String {
    if value.len() >= 19 && value.as_bytes().get(10) == Some(&b'T') {
        format!("{} {}", &value[..10], &value[11..19])
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_align() {
        let out = render(
            &["ID", "STATUS"],
            &[vec!["a".into(), "ok".into()], vec!["long-id".into(), "x".into()]],
        );
        assert_eq!(out, "ID       STATUS\na        ok\nlong-id  x\n");
    }

    #[test]
    fn fields_render() {
        let v = json!({"a": "x", "n": 3, "s": {"p": "ready"}, "l": ["p", "q"], "z": null});
        assert_eq!(field(&v, "a"), "x");
        assert_eq!(field(&v, "n"), "3");
        assert_eq!(field(&v, "z"), "-");
        assert_eq!(field(&v, "l"), "p,q");
        assert_eq!(path(&v, "s.p"), "ready");
        assert_eq!(short_time("2026-01-02T03:04:05.123Z"), "2026-01-02 03:04:05");
    }
}
