//! What a `tools/call` result looks like on a terminal: text content on
//! stdout; `structuredContent` as JSON when there is no text (or the whole
//! result with `--json`); images, audio and binary resources saved to files
//! whose paths are printed; `isError` text on stderr with exit code 1. Files
//! are returned for the caller to write, so this stays pure.

use std::path::{Path, PathBuf};

use serde_json::Value;

pub(crate) struct Rendered {
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) files: Vec<(PathBuf, Vec<u8>)>,
    pub(crate) exit: u8,
}

/// A file extension for a MIME type: the common ones by table, else a plain
/// subtype (`image/heic` -> `heic`), else `bin`. Parameters (`; charset=...`) are ignored.
fn extension(mime: &str) -> String {
    let mime = mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let known = match mime.as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/svg+xml" => "svg",
        "image/bmp" | "image/x-ms-bmp" => "bmp",
        "image/tiff" => "tiff",
        "image/x-icon" | "image/vnd.microsoft.icon" => "ico",
        "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => "wav",
        "audio/mpeg" | "audio/mp3" => "mp3",
        "audio/ogg" => "ogg",
        "audio/mp4" | "audio/x-m4a" => "m4a",
        "audio/webm" | "video/webm" => "webm",
        "video/mp4" => "mp4",
        "application/pdf" => "pdf",
        "application/gzip" => "gz",
        "application/zip" => "zip",
        "application/json" => "json",
        "text/plain" => "txt",
        "text/markdown" => "md",
        "text/html" => "html",
        "text/csv" => "csv",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_owned();
    }
    let sub = mime.split('/').nth(1).unwrap_or("");
    let sub = sub.strip_prefix("x-").unwrap_or(sub);
    let sub = sub.split('+').next().unwrap_or("");
    if !sub.is_empty() && sub.len() <= 8 && sub.bytes().all(|b| b.is_ascii_alphanumeric()) {
        sub.to_owned()
    } else {
        "bin".to_owned()
    }
}

pub(crate) fn render_result(result: &Value, json: bool, out_dir: &Path) -> Rendered {
    let is_error = result
        .get("isError")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut text = Vec::new();
    let mut notes = Vec::new();
    let mut files = Vec::new();
    let stamp = std::process::id();
    let mut save = |mime: &str, b64: &str, notes: &mut Vec<String>| {
        let path = out_dir.join(format!(
            "mcp-{stamp}-{}.{}",
            files.len() + 1,
            extension(mime)
        ));
        match decode_base64(b64) {
            Some(bytes) => {
                notes.push(format!("saved {mime} to {}", path.display()));
                files.push((path, bytes));
            }
            None => notes.push(format!("({mime} content was not valid base64)")),
        }
    };
    for item in result
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match item.get("type").and_then(Value::as_str) {
            Some("text") => text.push(
                item.get("text")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            ),
            Some("image") | Some("audio") => {
                let mime = item
                    .get("mimeType")
                    .and_then(Value::as_str)
                    .unwrap_or("application/octet-stream");
                save(
                    mime,
                    item.get("data").and_then(Value::as_str).unwrap_or(""),
                    &mut notes,
                );
            }
            Some("resource") => {
                let r = item.get("resource").unwrap_or(&Value::Null);
                if let Some(t) = r.get("text").and_then(Value::as_str) {
                    text.push(t.to_owned());
                } else if let Some(b) = r.get("blob").and_then(Value::as_str) {
                    let mime = r
                        .get("mimeType")
                        .and_then(Value::as_str)
                        .unwrap_or("application/octet-stream");
                    save(mime, b, &mut notes);
                }
            }
            Some("resource_link") => {
                let uri = item.get("uri").and_then(Value::as_str).unwrap_or("");
                notes.push(format!("resource: {uri}"));
            }
            // A content type this version does not know: shown, not dropped.
            _ => text.push(item.to_string()),
        }
    }
    let mut body = text.join("\n");
    if json {
        body = serde_json::to_string_pretty(result).unwrap_or_default();
    } else if let (true, Some(sc)) = (text.is_empty(), result.get("structuredContent")) {
        body = serde_json::to_string_pretty(sc).unwrap_or_default();
    }
    if !body.is_empty() && !body.ends_with('\n') {
        body.push('\n');
    }
    let mut extra = String::new();
    for n in notes {
        extra.push_str(&n);
        extra.push('\n');
    }
    if is_error && !json && body.is_empty() {
        body.push_str("the tool reported an error without a message\n");
    }
    if is_error && !json {
        Rendered {
            stdout: extra,
            stderr: body,
            files,
            exit: 1,
        }
    } else {
        Rendered {
            stdout: body + &extra,
            stderr: String::new(),
            files,
            exit: u8::from(is_error),
        }
    }
}

/// Standard base64 (with or without padding); None when malformed.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_structured_files_and_errors() {
        let dir = Path::new("/tmp/out");
        let r = render_result(
            &json!({"content": [{"type": "text", "text": "hi"}]}),
            false,
            dir,
        );
        assert_eq!((r.stdout.as_str(), r.exit), ("hi\n", 0));
        let r = render_result(
            &json!({"content": [], "structuredContent": {"a": 1}}),
            false,
            dir,
        );
        assert!(r.stdout.contains("\"a\": 1"));
        let r = render_result(
            &json!({"content": [{"type": "image", "mimeType": "image/png", "data": "iVBORw0KGgo="}]}),
            false,
            dir,
        );
        assert_eq!(r.files.len(), 1);
        assert_eq!(&r.files[0].1[1..4], b"PNG");
        assert!(r.stdout.contains("saved image/png to /tmp/out/"));
        let r = render_result(
            &json!({"content": [{"type": "text", "text": "boom"}], "isError": true}),
            false,
            dir,
        );
        assert_eq!(
            (r.stderr.as_str(), r.stdout.as_str(), r.exit),
            ("boom\n", "", 1)
        );
        let r = render_result(
            &json!({"content": [{"type": "text", "text": "x"}], "structuredContent": {"b": 2}}),
            true,
            dir,
        );
        assert!(r.stdout.contains("\"structuredContent\""));
    }

    #[test]
    fn base64() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
        assert!(decode_base64("a$b").is_none());
    }

    #[test]
    fn a_silent_error_still_says_something_and_unknown_content_is_shown() {
        let dir = Path::new("/tmp/out");
        let r = render_result(&json!({"content": [], "isError": true}), false, dir);
        assert_eq!(r.exit, 1);
        assert!(r.stderr.contains("without a message"));
        let r = render_result(
            &json!({"content": [{"type": "video", "uri": "x"}]}),
            false,
            dir,
        );
        assert!(r.stdout.contains(r#""type":"video""#));
    }

    #[test]
    fn file_extensions_from_mime_types() {
        assert_eq!(extension("image/png"), "png");
        assert_eq!(extension("Image/PNG; charset=binary"), "png");
        assert_eq!(extension("audio/mp4"), "m4a");
        assert_eq!(extension("image/heic"), "heic");
        assert_eq!(extension("application/x-tar"), "tar");
        assert_eq!(
            extension("application/vnd.openxmlformats-officedocument"),
            "bin"
        );
        assert_eq!(extension(""), "bin");
    }
}
