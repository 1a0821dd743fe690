//! Just enough `multipart/form-data` to read KV's `value` and `metadata` parts.

pub struct Part {
    pub name: String,
    pub data: Vec<u8>,
}

pub fn parse(content_type: &str, body: &[u8]) -> Result<Vec<Part>, String> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))
        .map(|b| b.trim_matches('"'))
        .filter(|b| !b.is_empty())
        .ok_or("multipart body without a boundary")?;
    let delimiter = format!("--{boundary}");
    let d = delimiter.as_bytes();
    let mut parts = Vec::new();
    let mut pos = find(body, d, 0).ok_or("multipart body without its boundary")? + d.len();
    loop {
        if body[pos..].starts_with(b"--") {
            break;
        }
        let head_start = pos + skip_crlf(&body[pos..]);
        let head_end =
            find(body, b"\r\n\r\n", head_start).ok_or("multipart part without headers")?;
        let head = String::from_utf8_lossy(&body[head_start..head_end]);
        let next =
            find(body, d, head_end + 4).ok_or("multipart part without a closing boundary")?;
        let mut data_end = next;
        if data_end >= 2 && &body[data_end - 2..data_end] == b"\r\n" {
            data_end -= 2;
        }
        let name = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))
            .and_then(|l| {
                l.split(';')
                    .map(str::trim)
                    .find_map(|p| p.strip_prefix("name="))
            })
            .map(|n| n.trim_matches('"').to_string())
            .ok_or("multipart part without a name")?;
        parts.push(Part {
            name,
            data: body[head_end + 4..data_end].to_vec(),
        });
        pos = next + d.len();
    }
    Ok(parts)
}

fn skip_crlf(b: &[u8]) -> usize {
    if b.starts_with(b"\r\n") { 2 } else { 0 }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_value_and_metadata_parts() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"value\"\r\n\r\nhello\r\nworld\r\n--XX\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{\"a\":1}\r\n--XX--\r\n";
        let parts = super::parse("multipart/form-data; boundary=XX", body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].data, b"hello\r\nworld");
        assert_eq!(parts[1].name, "metadata");
        assert!(super::parse("multipart/form-data", body).is_err());
    }
}
