//! Tables as OpenMLDB's CLI prints them: a two-space margin, left-aligned columns two spaces apart, and a dashed
//! rule under the header (two dashes wider than the columns, as in the seed's `showtablet` and `showopstatus`).

/// Renders `headers` and `rows`; a short row is padded with empty cells.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::from(" ");
        for (i, w) in widths.iter().enumerate() {
            let cell = cells.get(i).copied().unwrap_or("");
            s.push(' ');
            s.push_str(cell);
            s.push_str(&" ".repeat(w - cell.chars().count() + 1));
        }
        s.trim_end().to_string()
    };
    let mut out = line(headers.to_vec());
    let total = 2 + widths.iter().map(|w| w + 2).sum::<usize>();
    out.push('\n');
    out.push_str(&"-".repeat(total));
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_the_seed_transcripts() {
        let out = render(
            &["endpoint", "state", "age"],
            &[vec!["172.27.128.31:8541".into(), "kTabletHealthy".into(), "3h".into()]],
        );
        assert_eq!(
            out,
            "  endpoint            state           age\n\
             -------------------------------------------\n  \
             172.27.128.31:8541  kTabletHealthy  3h\n"
        );
        let out = render(&["key", "value"], &[vec!["auto_failover".into(), "true".into()]]);
        assert!(out.starts_with("  key            value\n"), "{out}");
    }
}
