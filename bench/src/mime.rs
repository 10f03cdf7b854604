//! Reads the code out of a mail as it came over SMTP: headers, an optional multipart body, and
//! the transfer encodings lettre may choose (7bit, quoted-printable, base64). The code is the
//! digits after "code is: ", as a person reading the mail would find them.

/// What precedes the code in the text of a code mail.
pub const MARKER: &str = "code is: ";

/// The code in `message` (headers and body, CRLF or LF line ends), or `None`.
pub fn code_in(message: &[u8]) -> Option<String> {
    let (headers, body) = split_head(message);
    let headers = unfold(headers);
    let content_type = header(&headers, "content-type").unwrap_or_default();
    if content_type.to_ascii_lowercase().starts_with("multipart/") {
        let boundary = parameter(&content_type, "boundary")?;
        return parts(body, &boundary).into_iter().find_map(code_in);
    }
    let encoding = header(&headers, "content-transfer-encoding")
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let text = match encoding.as_str() {
        "base64" => base64_decode(body)?,
        "quoted-printable" => quoted_printable_decode(body),
        _ => body.to_vec(),
    };
    digits_after_marker(&String::from_utf8_lossy(&text))
}

fn digits_after_marker(text: &str) -> Option<String> {
    let start = text.find(MARKER)? + MARKER.len();
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    (!digits.is_empty()).then_some(digits)
}

/// Splits at the first empty line; a message without one is all headers.
fn split_head(message: &[u8]) -> (&[u8], &[u8]) {
    for blank in [&b"\r\n"[..], b"\n"] {
        if let Some(body) = message.strip_prefix(blank) {
            return (&[], body);
        }
    }
    for (index, window) in message.windows(2).enumerate() {
        if window == b"\n\n" {
            return (&message[..index + 1], &message[index + 2..]);
        }
        if window == b"\n\r" && message.get(index + 2) == Some(&b'\n') {
            return (&message[..index + 1], &message[index + 3..]);
        }
    }
    (message, &[])
}

/// Header lines with their continuation lines joined.
fn unfold(headers: &[u8]) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for raw in String::from_utf8_lossy(headers).lines() {
        let line = raw.trim_end_matches('\r');
        match lines.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => {
                last.push(' ');
                last.push_str(line.trim_start());
            }
            _ if !line.is_empty() => lines.push(line.to_string()),
            _ => {}
        }
    }
    lines
}

fn header(headers: &[String], name: &str) -> Option<String> {
    headers.iter().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_string())
    })
}

/// A `name=value` (or `name="value"`) parameter of a header value.
fn parameter(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|param| {
        let (key, raw) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| raw.trim().trim_matches('"').to_string())
    })
}

/// The parts between `--boundary` lines, each with its own headers.
fn parts<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    let delimiter = format!("--{boundary}");
    let text = body;
    let mut found = Vec::new();
    let mut starts = Vec::new();
    let mut at = 0;
    while let Some(offset) = find(&text[at..], delimiter.as_bytes()) {
        let start = at + offset;
        starts.push(start);
        at = start + delimiter.len();
    }
    for pair in starts.windows(2) {
        let part = &text[pair[0] + delimiter.len()..pair[1]];
        // Skip the rest of the delimiter line.
        let part = match find(part, b"\n") {
            Some(end) => &part[end + 1..],
            None => continue,
        };
        found.push(part);
    }
    found
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Decodes base64, ignoring line breaks and other whitespace; `None` on any other stray byte.
fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &byte in text {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            // Keeps the low 8 bits: the byte just completed.
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// Decodes quoted-printable: `=XX` escapes and `=` soft line breaks.
fn quoted_printable_decode(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut index = 0;
    while index < text.len() {
        let byte = text[index];
        if byte != b'=' {
            out.push(byte);
            index += 1;
            continue;
        }
        let rest = &text[index + 1..];
        if rest.starts_with(b"\r\n") {
            index += 3;
        } else if rest.starts_with(b"\n") {
            index += 2;
        } else if let Some(value) = rest
            .get(..2)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(value);
            index += 3;
        } else {
            out.push(byte);
            index += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &str = "From: otp@example.test\r\nTo: a@example.test\r\nSubject: Your login code\r\n\
        Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n\
        Your login code is: 482913\r\n\r\nIt is for user a.\r\n";

    #[test]
    fn a_plain_message_gives_its_code() {
        assert_eq!(code_in(PLAIN.as_bytes()).as_deref(), Some("482913"));
    }

    #[test]
    fn a_base64_body_is_decoded_first() {
        // "Your login code is: 0012345\n" in base64, split over two lines.
        let message = "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n\
            WW91ciBsb2dpbiBjb2Rl\r\nIGlzOiAwMDEyMzQ1Cg==\r\n";
        assert_eq!(code_in(message.as_bytes()).as_deref(), Some("0012345"));
    }

    #[test]
    fn a_quoted_printable_body_with_a_soft_break_is_decoded_first() {
        let message = "Content-Transfer-Encoding: quoted-printable\n\nYour login code =\n\
            is=3A 777=\r\n888 ok\n";
        assert_eq!(code_in(message.as_bytes()).as_deref(), Some("777888"));
    }

    #[test]
    fn the_text_part_of_a_multipart_message_gives_the_code() {
        let message = "Content-Type: multipart/alternative;\r\n boundary=\"XyZ\"\r\n\r\n\
            --XyZ\r\nContent-Type: text/plain\r\n\r\nYour login code is: 123456\r\n\
            --XyZ\r\nContent-Type: text/html\r\n\r\n<p>code</p>\r\n--XyZ--\r\n";
        assert_eq!(code_in(message.as_bytes()).as_deref(), Some("123456"));
    }

    #[test]
    fn a_message_without_headers_is_all_body() {
        assert_eq!(
            code_in(b"\r\ncode is: 111111\r\n").as_deref(),
            Some("111111")
        );
        assert_eq!(code_in(b"\ncode is: 222222\n").as_deref(), Some("222222"));
    }

    #[test]
    fn a_message_without_a_code_gives_none() {
        assert_eq!(code_in(b"Subject: hi\r\n\r\nNo code is here.\r\n"), None);
        assert_eq!(code_in(b"Subject: hi\r\n\r\nYour code is: soon\r\n"), None);
        assert_eq!(code_in(b""), None);
    }
}
