//! Lists longer than one frame: users and audit rows come back in pages, and a large import
//! goes out in parts (every part checked first, so bad lines still stop the whole file).

use common::wire_admin::{AdminRequest, AdminResponse, ImportRow, PAGE_BYTES};

use super::connect::{CallError, Conn};

/// Every user, page by page, as one answer.
pub fn users(
    conn: &Conn,
    enabled_only: bool,
    locked_only: bool,
) -> Result<AdminResponse, CallError> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let answer = conn.admin(AdminRequest::UserList {
            enabled_only,
            locked_only,
            after: after.take(),
        })?;
        match answer {
            AdminResponse::Users { users, more_after } => {
                all.extend(users);
                match more_after {
                    Some(name) => after = Some(name),
                    None => {
                        return Ok(AdminResponse::Users {
                            users: all,
                            more_after: None,
                        });
                    }
                }
            }
            other => return Ok(other),
        }
    }
}

/// Up to `limit` audit rows, page by page, as one answer.
pub fn audit(
    conn: &Conn,
    user: Option<String>,
    event: Option<String>,
    since: Option<i64>,
    limit: u32,
) -> Result<AdminResponse, CallError> {
    let mut all = Vec::new();
    let mut before = None;
    loop {
        let left = limit.saturating_sub(u32::try_from(all.len()).unwrap_or(u32::MAX));
        if left == 0 {
            break;
        }
        let answer = conn.admin(AdminRequest::Audit {
            user: user.clone(),
            event: event.clone(),
            since,
            limit: left,
            before,
        })?;
        match answer {
            AdminResponse::Audit { rows, more_before } => {
                all.extend(rows);
                match more_before {
                    Some(next) => before = Some(next),
                    None => break,
                }
            }
            other => return Ok(other),
        }
    }
    Ok(AdminResponse::Audit {
        rows: all,
        more_before: None,
    })
}

/// Imports `rows`: in one request when they fit, else checked part by part and then sent.
pub fn import(
    conn: &Conn,
    rows: Vec<ImportRow>,
    partial: bool,
) -> Result<AdminResponse, CallError> {
    let parts = split(rows);
    if parts.len() <= 1 {
        return conn.admin(AdminRequest::Import {
            rows: parts.into_iter().flatten().collect(),
            partial,
            dry_run: false,
        });
    }
    let mut problems = Vec::new();
    for part in &parts {
        match conn.admin(AdminRequest::Import {
            rows: part.clone(),
            partial,
            dry_run: true,
        })? {
            AdminResponse::Imported {
                problems: found, ..
            } => problems.extend(found),
            other => return Ok(other),
        }
    }
    if !problems.is_empty() && !partial {
        return Ok(AdminResponse::Imported {
            imported: 0,
            problems,
            applied: false,
        });
    }
    let mut imported = 0;
    for part in parts {
        match conn.admin(AdminRequest::Import {
            rows: part,
            partial: true,
            dry_run: false,
        })? {
            AdminResponse::Imported { imported: n, .. } => imported += n,
            other => return Ok(other),
        }
    }
    Ok(AdminResponse::Imported {
        imported,
        problems,
        applied: true,
    })
}

/// Splits rows into parts of at most [`PAGE_BYTES`] of JSON each.
fn split(rows: Vec<ImportRow>) -> Vec<Vec<ImportRow>> {
    let mut parts: Vec<Vec<ImportRow>> = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0usize;
    for row in rows {
        let size = serde_json::to_vec(&row).map_or(PAGE_BYTES, |v| v.len() + 1);
        if bytes + size > PAGE_BYTES && !current.is_empty() {
            parts.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(row);
    }
    if !current.is_empty() {
        parts.push(current);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: usize) -> ImportRow {
        ImportRow {
            line: n,
            user: format!("user{n}"),
            email: format!("user{n}@example.com"),
            enabled: None,
            protocols: None,
        }
    }

    #[test]
    fn large_imports_are_split_into_parts_that_fit_a_frame_and_keep_every_row_in_order() {
        let rows: Vec<ImportRow> = (1..=5000).map(row).collect();
        let parts = split(rows.clone());
        assert!(parts.len() > 1);
        for part in &parts {
            let request = AdminRequest::Import {
                rows: part.clone(),
                partial: false,
                dry_run: true,
            };
            let bytes = serde_json::to_vec(&common::wire::Request::Admin { request }).unwrap();
            assert!(bytes.len() < common::frame::MAX_PAYLOAD, "{}", bytes.len());
        }
        assert_eq!(parts.concat(), rows);
    }

    #[test]
    fn a_small_import_is_one_part() {
        assert_eq!(split((1..=3).map(row).collect()).len(), 1);
        assert!(split(Vec::new()).is_empty());
    }
}
