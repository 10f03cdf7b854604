//! Reading an import file: CSV lines of `user,email[,enabled[,protocols]]`.
//!
//! Only the shape is read here (fields, the `enabled` word); otpd checks names, addresses and
//! protocols, so both sides agree on what is valid. Lines that cannot even be split are
//! reported with their numbers like otpd's findings.

use common::wire_admin::{ImportRow, LineProblem};

/// Splits `text` into rows and shape problems. Blank lines, `#` comments and a header line
/// (`user,...` on line 1) are skipped.
pub fn parse(text: &str) -> (Vec<ImportRow>, Vec<LineProblem>) {
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields = match split(trimmed) {
            Ok(fields) => fields,
            Err(message) => {
                problems.push(LineProblem { line, message });
                continue;
            }
        };
        if line == 1
            && fields
                .first()
                .is_some_and(|f| f.eq_ignore_ascii_case("user"))
        {
            continue;
        }
        match row(line, &fields) {
            Ok(row) => match rows.iter().find(|r: &&ImportRow| r.user == row.user) {
                Some(first) => problems.push(LineProblem {
                    line,
                    message: format!("{} is already on line {}", row.user, first.line),
                }),
                None => rows.push(row),
            },
            Err(message) => problems.push(LineProblem { line, message }),
        }
    }
    (rows, problems)
}

fn row(line: usize, fields: &[String]) -> Result<ImportRow, String> {
    let (Some(user), Some(email)) = (fields.first(), fields.get(1)) else {
        return Err("expected user,email[,enabled[,protocols]]".into());
    };
    let enabled = fields.get(2).map(|word| enabled(word)).transpose()?;
    let protocols: Vec<String> = fields
        .iter()
        .skip(3)
        .flat_map(|f| f.split([',', ';', ' ']))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect();
    let protocols = if protocols.is_empty() || protocols == ["all"] {
        None
    } else {
        Some(protocols)
    };
    Ok(ImportRow {
        line,
        user: user.clone(),
        email: email.clone(),
        enabled,
        protocols,
    })
}

fn enabled(word: &str) -> Result<bool, String> {
    match word.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" | "enabled" => Ok(true),
        "no" | "false" | "off" | "0" | "disabled" | "" => Ok(false),
        other => Err(format!(
            "enabled must be yes/no, true/false, on/off or 1/0, got {other:?}"
        )),
    }
}

/// Splits one CSV line: fields separated by commas, optionally in double quotes (`""` inside
/// quotes is one quote); surrounding spaces are trimmed.
fn split(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                current.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if current.trim().is_empty() => {
                current.clear();
                quoted = true;
            }
            (',', false) => fields.push(std::mem::take(&mut current).trim().to_string()),
            (c, _) => current.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    fields.push(current.trim().to_string());
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_take_optional_enabled_and_protocols_in_several_spellings() {
        let (rows, problems) = parse(
            "user,email,enabled,protocols\n\
             alice,alice@example.com\n\
             # a comment\n\
             \n\
             bob,bob@example.com,yes,ssh,sftp\n\
             carol,carol@example.com,no,\"ssh,ftp\"\n\
             dave,dave@example.com,1,ssh;webdav\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let row = |line, user: &str, enabled, protocols: Option<&[&str]>| ImportRow {
            line,
            user: user.to_string(),
            email: format!("{user}@example.com"),
            enabled,
            protocols: protocols.map(|p| p.iter().map(|s| s.to_string()).collect()),
        };
        assert_eq!(
            rows,
            vec![
                row(2, "alice", None, None),
                row(5, "bob", Some(true), Some(&["ssh", "sftp"])),
                row(6, "carol", Some(false), Some(&["ssh", "ftp"])),
                row(7, "dave", Some(true), Some(&["ssh", "webdav"])),
            ]
        );
    }

    #[test]
    fn malformed_lines_are_reported_with_their_numbers() {
        let (rows, problems) = parse(
            "alice,alice@example.com\njustaname\nbob,b@example.com,maybe\neve,\"e@example.com\nalice,other@example.com\n",
        );
        assert_eq!(rows.len(), 1);
        let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [2, 3, 4, 5]);
        assert_eq!(problems[3].message, "alice is already on line 1");
        assert!(problems[1].message.contains("maybe"));
    }
}
