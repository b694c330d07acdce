//! The metering dashboard and the audit table. Usage: calls and compute
//! tokens per hour or day over a range, stacked per tenant, tool or key, as
//! SVG drawn here (no script, no inline style); model tokens per run; top
//! spenders. Audit: the ledger's rows filtered by tenant, key, tool, run,
//! outcome and time range, fifty to a page, exported whole as CSV or JSON.
//! Both read the store's audit rows (`Store::audit`, as `/admin/audit`
//! does); a tenant's session is held to its own tenant.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use mcpgate_runs::RunFilter;
use mcpgate_store::{AuditFilter, AuditRecord, Outcome, now_ms};
use serde::Deserialize;

use super::{Page, Signed, UiError, esc, url_part, when};
use crate::mcp::runs::Runs;
use crate::state::App;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const PALETTE: &[&str] = &[
    "#1f5fa8", "#e07b24", "#2e9c4a", "#b3261e", "#7a4fb0", "#8a6d3b", "#888888",
];
/// Rows read for one chart or table at most.
const MAX_ROWS: i64 = 100_000;

/// A range name as a duration in ms (`None`: all of history).
fn range_ms(range: &str) -> Result<Option<i64>, UiError> {
    Ok(match range {
        "1h" => Some(HOUR),
        "24h" => Some(DAY),
        "7d" => Some(7 * DAY),
        "30d" => Some(30 * DAY),
        "90d" => Some(90 * DAY),
        "all" => None,
        other => {
            return Err(UiError::bad(format!(
                "range {other:?}: one of 1h, 24h, 7d, 30d, 90d, all"
            )));
        }
    })
}

fn select(id: &str, name: &str, label: &str, current: &str, options: &[&str]) -> String {
    let mut b =
        format!("<div><label for=\"{id}\">{label}</label><select id=\"{id}\" name=\"{name}\">");
    for o in options {
        let _ = write!(
            b,
            "<option{}>{o}</option>",
            if *o == current { " selected" } else { "" }
        );
    }
    b.push_str("</select></div>");
    b
}

#[derive(Deserialize, Default)]
pub(crate) struct UsageQuery {
    range: Option<String>,
    bucket: Option<String>,
    by: Option<String>,
    tenant: Option<String>,
    /// A date range instead of `range`: `YYYY-MM-DD`, UTC, both days included.
    from: Option<String>,
    to: Option<String>,
}

/// `YYYY-MM-DD` as ms since the epoch at 00:00 UTC.
fn date_ms(field: &str, v: &str) -> Result<i64, UiError> {
    let bad = || UiError::bad(format!("{field} {v:?}: a date as YYYY-MM-DD"));
    let mut parts = v.trim().splitn(3, '-').map(str::parse::<i64>);
    let (Some(Ok(y)), Some(Ok(m)), Some(Ok(d))) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    // 2023-02-29 comes out as a real day: only a date that reads back is one.
    if mcpgate_store::format_ts(days * DAY).get(..10) != Some(v.trim()) {
        return Err(bad());
    }
    Ok(days * DAY)
}

/// One stacked bar chart: values per bucket per series.
struct Chart<'a> {
    title: &'a str,
    id: &'a str,
    labels: Vec<String>,
    series: Vec<(String, Vec<i64>)>,
}

impl Chart<'_> {
    fn svg(&self) -> String {
        let (w, h, left, bottom, top) = (800.0, 240.0, 56.0, 24.0, 10.0);
        let n = self.labels.len().max(1);
        let totals: Vec<i64> = (0..n)
            .map(|i| {
                self.series
                    .iter()
                    .map(|s| s.1.get(i).copied().unwrap_or(0))
                    .sum()
            })
            .collect();
        let total: i64 = totals.iter().sum();
        let max = totals.iter().copied().max().unwrap_or(0).max(1) as f64;
        let plot_w = w - left - 8.0;
        let plot_h = h - bottom - top;
        let bar = plot_w / n as f64;
        let mut b = format!(
            "<figure class=\"chart\"><figcaption><b>{}</b> (total {total})</figcaption><svg id=\"{}\" data-total=\"{total}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{}: {total} in all\" xmlns=\"http://www.w3.org/2000/svg\">",
            esc(self.title),
            self.id,
            esc(self.title)
        );
        let _ = write!(
            b,
            "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{y}\" stroke=\"#888\"/><line x1=\"{left}\" y1=\"{y}\" x2=\"{x}\" y2=\"{y}\" stroke=\"#888\"/><text x=\"{tx}\" y=\"{ty}\" font-size=\"11\" text-anchor=\"end\" fill=\"#333\">{max}</text><text x=\"{tx}\" y=\"{y}\" font-size=\"11\" text-anchor=\"end\" fill=\"#333\">0</text>",
            y = h - bottom,
            x = w - 8.0,
            tx = left - 4.0,
            ty = top + 10.0,
            max = max as i64
        );
        for i in 0..n {
            let mut y = h - bottom;
            let x = left + i as f64 * bar + bar * 0.1;
            for (k, (name, values)) in self.series.iter().enumerate() {
                let v = values.get(i).copied().unwrap_or(0);
                if v == 0 {
                    continue;
                }
                let bh = v as f64 / max * plot_h;
                y -= bh;
                let _ = write!(
                    b,
                    "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{}\"><title>{} · {}: {v}</title></rect>",
                    (bar * 0.8).max(1.0),
                    PALETTE[k % PALETTE.len()],
                    esc(self.labels.get(i).map(String::as_str).unwrap_or("")),
                    esc(name)
                );
            }
        }
        for (i, label) in self.labels.iter().enumerate() {
            let every = (n / 6).max(1);
            if i % every == 0 {
                let x = left + i as f64 * bar;
                let anchor = if x > w - 90.0 { "end" } else { "start" };
                let _ = write!(
                    b,
                    "<text x=\"{:.1}\" y=\"{}\" font-size=\"10\" fill=\"#333\" text-anchor=\"{anchor}\">{}</text>",
                    if anchor == "end" { w - 8.0 } else { x },
                    h - 6.0,
                    esc(label)
                );
            }
        }
        b.push_str("</svg><ul class=\"legend\">");
        for (k, (name, values)) in self.series.iter().enumerate() {
            let _ = write!(
                b,
                "<li><svg viewBox=\"0 0 10 10\" aria-hidden=\"true\"><rect width=\"10\" height=\"10\" fill=\"{}\"/></svg>{} ({})</li>",
                PALETTE[k % PALETTE.len()],
                esc(name),
                values.iter().sum::<i64>()
            );
        }
        b.push_str("</ul></figure>");
        b
    }
}

/// The top `keep` series of `rows` by `weight` over the buckets; the rest
/// gathered as "other".
fn series_of(rows: &[(usize, String, i64)], n: usize, keep: usize) -> Vec<(String, Vec<i64>)> {
    let mut sums: BTreeMap<&str, i64> = BTreeMap::new();
    for (_, s, v) in rows {
        *sums.entry(s).or_default() += v;
    }
    let mut order: Vec<(&str, i64)> = sums.into_iter().filter(|(_, v)| *v > 0).collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let top: Vec<String> = order
        .iter()
        .take(keep)
        .map(|(s, _)| (*s).to_owned())
        .collect();
    let mut out: Vec<(String, Vec<i64>)> = top.iter().map(|s| (s.clone(), vec![0; n])).collect();
    let mut other = vec![0; n];
    for (i, s, v) in rows {
        match top.iter().position(|t| t == s) {
            Some(k) => out[k].1[*i] += v,
            None => other[*i] += v,
        }
    }
    if other.iter().any(|v| *v > 0) {
        out.push(("other".into(), other));
    }
    out
}

pub(crate) async fn usage(
    State(app): State<Arc<App>>,
    s: Signed,
    Query(q): Query<UsageQuery>,
) -> Page {
    let range = q.range.as_deref().unwrap_or("24h");
    let span = range_ms(range)?.unwrap_or(365 * DAY);
    let by = q.by.as_deref().unwrap_or("tenant");
    if !["tenant", "tool", "key"].contains(&by) {
        return Err(UiError::bad(format!("by {by:?}: tenant, tool or key")));
    }
    let tenant = match s.tenant() {
        Some(t) => Some(t.to_owned()),
        None => q.tenant.filter(|t| !t.is_empty()),
    };
    let from = q.from.as_deref().filter(|v| !v.is_empty());
    let to = q.to.as_deref().filter(|v| !v.is_empty());
    let (start, end) = match (from, to) {
        (None, None) => (now_ms() - span, now_ms()),
        (f, t) => {
            let end = match t {
                Some(t) => date_ms("to", t)? + DAY - 1,
                None => now_ms(),
            };
            let start = match f {
                Some(f) => date_ms("from", f)?,
                None => end - span,
            };
            if start > end {
                return Err(UiError::bad("from: the range starts after it ends"));
            }
            (start, end)
        }
    };
    let bucket = q.bucket.as_deref().unwrap_or(if end - start <= 2 * DAY {
        "hour"
    } else {
        "day"
    });
    let step = match bucket {
        "hour" => HOUR,
        "day" => DAY,
        other => return Err(UiError::bad(format!("bucket {other:?}: hour or day"))),
    };
    let first = start.div_euclid(step) * step;
    let n = ((end - first) / step + 1).clamp(1, 2000) as usize;
    let now = end;
    let rows = app
        .store
        .audit(&AuditFilter {
            tenant: tenant.clone(),
            name_glob: None,
            since_ms: Some(first),
            limit: Some(MAX_ROWS),
            run: None,
        })
        .await?;
    let rows: Vec<AuditRecord> = rows.into_iter().filter(|r| r.ts_ms <= now).collect();
    let labels: Vec<String> = (0..n)
        .map(|i| {
            let t = when(first + i as i64 * step);
            if step == DAY {
                t[..10].to_owned()
            } else {
                t[5..].to_owned()
            }
        })
        .collect();
    let dim = |r: &AuditRecord| match by {
        "tool" => r.name.clone(),
        "key" => r.key_id.clone().unwrap_or_else(|| "(none)".into()),
        _ => r.tenant.clone(),
    };
    let bucket_of = |r: &AuditRecord| (((r.ts_ms - first) / step).clamp(0, n as i64 - 1)) as usize;
    let calls: Vec<(usize, String, i64)> = rows.iter().map(|r| (bucket_of(r), dim(r), 1)).collect();
    let cost: Vec<(usize, String, i64)> = rows
        .iter()
        .map(|r| (bucket_of(r), dim(r), r.cost))
        .collect();
    let mut b =
        String::from("<h1>Usage</h1><form method=\"get\" action=\"/ui/usage\" class=\"grid\">");
    b.push_str(&select(
        "u-range",
        "range",
        "Range",
        range,
        &["1h", "24h", "7d", "30d", "90d", "all"],
    ));
    b.push_str(&select(
        "u-bucket",
        "bucket",
        "Bucket",
        bucket,
        &["hour", "day"],
    ));
    b.push_str(&select("u-by", "by", "Per", by, &["tenant", "tool", "key"]));
    if s.is_admin() {
        let _ = write!(
            b,
            "<div><label for=\"u-tenant\">Tenant (blank: all)</label><input id=\"u-tenant\" name=\"tenant\" type=\"text\" value=\"{}\"></div>",
            esc(tenant.as_deref().unwrap_or(""))
        );
    }
    let _ = write!(
        b,
        "<div><label for=\"u-from\">From (date, UTC)</label><input id=\"u-from\" name=\"from\" type=\"date\" value=\"{}\"></div><div><label for=\"u-to\">To (date, UTC)</label><input id=\"u-to\" name=\"to\" type=\"date\" value=\"{}\"></div>",
        esc(from.unwrap_or("")),
        esc(to.unwrap_or(""))
    );
    b.push_str("<div><button type=\"submit\">Show</button></div></form>");
    b.push_str(
        &Chart {
            title: &format!("Calls per {bucket}, per {by}"),
            id: "chart-calls",
            labels: labels.clone(),
            series: series_of(&calls, n, 6),
        }
        .svg(),
    );
    b.push_str(
        &Chart {
            title: &format!("Compute tokens per {bucket}, per {by}"),
            id: "chart-cost",
            labels,
            series: series_of(&cost, n, 6),
        }
        .svg(),
    );
    // Model tokens of the latest runs.
    let mut runs = Runs::of(&app)
        .list(
            &s.who,
            RunFilter {
                tenant: None,
                workflow: None,
                state: None,
                limit: 30,
            },
        )
        .await
        .unwrap_or_default();
    runs.reverse();
    let run_labels: Vec<String> = runs
        .iter()
        .map(|r| r.id.as_str().chars().take(8).collect())
        .collect();
    b.push_str(
        &Chart {
            title: "Model tokens per run (latest runs)",
            id: "chart-model",
            labels: run_labels,
            series: vec![
                (
                    "input".into(),
                    runs.iter().map(|r| r.input_tokens as i64).collect(),
                ),
                (
                    "output".into(),
                    runs.iter().map(|r| r.output_tokens as i64).collect(),
                ),
            ],
        }
        .svg(),
    );
    // Top spenders.
    let mut spend: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for r in &rows {
        let e = spend.entry(dim(r)).or_default();
        e.0 += r.cost;
        e.1 += 1;
    }
    let mut top: Vec<_> = spend.into_iter().collect();
    top.sort_by_key(|b| std::cmp::Reverse(b.1));
    let _ = write!(
        b,
        "<h2>Top spenders (per {by})</h2><div class=\"scroll\"><table id=\"top-spenders\"><thead><tr><th scope=\"col\">{by}</th><th scope=\"col\">Compute tokens</th><th scope=\"col\">Calls</th></tr></thead><tbody>"
    );
    for (name, (c, k)) in top.iter().take(10) {
        let _ = write!(b, "<tr><td>{}</td><td>{c}</td><td>{k}</td></tr>", esc(name));
    }
    if top.is_empty() {
        b.push_str("<tr><td colspan=\"3\">No calls in this range.</td></tr>");
    }
    b.push_str("</tbody></table></div>");
    Ok(s.page("Usage", &b))
}

#[derive(Deserialize, Default, Clone)]
pub(crate) struct AuditQuery {
    tenant: Option<String>,
    key: Option<String>,
    tool: Option<String>,
    run: Option<String>,
    outcome: Option<String>,
    range: Option<String>,
    /// Dates (`YYYY-MM-DD`, UTC, both included) that narrow `range`.
    from: Option<String>,
    to: Option<String>,
    page: Option<usize>,
    format: Option<String>,
}

fn blank(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// The audit rows the query asks for, newest first.
async fn audit_rows(app: &App, s: &Signed, q: &AuditQuery) -> Result<Vec<AuditRecord>, UiError> {
    let tenant = match s.tenant() {
        Some(t) => Some(t.to_owned()),
        None => blank(&q.tenant).map(str::to_owned),
    };
    let mut since = range_ms(q.range.as_deref().unwrap_or("7d"))?.map(|r| now_ms() - r);
    if let Some(f) = blank(&q.from) {
        let from = date_ms("from", f)?;
        since = Some(since.map_or(from, |s| s.max(from)));
    }
    let until = blank(&q.to)
        .map(|t| date_ms("to", t).map(|d| d + DAY - 1))
        .transpose()?;
    let mut rows = app
        .store
        .audit(&AuditFilter {
            tenant,
            name_glob: blank(&q.tool).map(str::to_owned),
            since_ms: since,
            limit: Some(MAX_ROWS),
            run: blank(&q.run).map(str::to_owned),
        })
        .await?;
    if let Some(k) = blank(&q.key) {
        rows.retain(|r| r.key_id.as_deref() == Some(k));
    }
    if let Some(o) = blank(&q.outcome) {
        rows.retain(|r| r.outcome == o);
    }
    if let Some(u) = until {
        rows.retain(|r| r.ts_ms <= u);
    }
    rows.sort_by(|a, b| b.ts_ms.cmp(&a.ts_ms).then(b.id.cmp(&a.id)));
    Ok(rows)
}

const PAGE: usize = 50;

pub(crate) async fn audit(
    State(app): State<Arc<App>>,
    s: Signed,
    Query(q): Query<AuditQuery>,
) -> Page {
    let rows = audit_rows(&app, &s, &q).await?;
    let page = q.page.unwrap_or(0);
    let mut b =
        String::from("<h1>Audit</h1><form method=\"get\" action=\"/ui/audit\" class=\"grid\">");
    let text = |b: &mut String, id: &str, label: &str, v: &Option<String>| {
        let _ = write!(
            b,
            "<div><label for=\"a-{id}\">{label}</label><input id=\"a-{id}\" name=\"{id}\" type=\"text\" value=\"{}\"></div>",
            esc(blank(v).unwrap_or(""))
        );
    };
    if s.is_admin() {
        text(&mut b, "tenant", "Tenant", &q.tenant);
    }
    text(&mut b, "key", "Key id", &q.key);
    text(&mut b, "tool", "Tool (glob)", &q.tool);
    text(&mut b, "run", "Run", &q.run);
    let outcomes: Vec<String> = [String::new()]
        .into_iter()
        .chain(Outcome::ALL.iter().filter_map(|o| {
            serde_json::to_value(o)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
        }))
        .chain(["pending".to_owned(), "interrupted".to_owned()])
        .collect();
    let outcomes: Vec<&str> = outcomes.iter().map(String::as_str).collect();
    b.push_str(&select(
        "a-outcome",
        "outcome",
        "Outcome",
        blank(&q.outcome).unwrap_or(""),
        &outcomes,
    ));
    b.push_str(&select(
        "a-range",
        "range",
        "Time range",
        q.range.as_deref().unwrap_or("7d"),
        &["1h", "24h", "7d", "30d", "90d", "all"],
    ));
    let _ = write!(
        b,
        "<div><label for=\"a-from\">From (date, UTC)</label><input id=\"a-from\" name=\"from\" type=\"date\" value=\"{}\"></div><div><label for=\"a-to\">To (date, UTC)</label><input id=\"a-to\" name=\"to\" type=\"date\" value=\"{}\"></div>",
        esc(blank(&q.from).unwrap_or("")),
        esc(blank(&q.to).unwrap_or(""))
    );
    b.push_str("<div><button type=\"submit\">Filter</button></div></form>");
    let mut query: Vec<String> = Vec::new();
    for (k, v) in [
        ("tenant", &q.tenant),
        ("key", &q.key),
        ("tool", &q.tool),
        ("run", &q.run),
        ("outcome", &q.outcome),
        ("range", &q.range),
        ("from", &q.from),
        ("to", &q.to),
    ] {
        if let Some(v) = blank(v) {
            query.push(format!("{k}={}", url_part(v)));
        }
    }
    let qs = query.join("&amp;");
    let _ = write!(
        b,
        "<p>{} rows. Export: <a id=\"export-csv\" href=\"/ui/audit/export?format=csv&amp;{qs}\">CSV</a> · <a id=\"export-json\" href=\"/ui/audit/export?format=json&amp;{qs}\">JSON</a></p>",
        rows.len()
    );
    b.push_str("<div class=\"scroll\"><table id=\"audit\"><thead><tr><th scope=\"col\">Time</th><th scope=\"col\">Tenant</th><th scope=\"col\" class=\"hide-narrow\">Key</th><th scope=\"col\">Call</th><th scope=\"col\">Outcome</th><th scope=\"col\" class=\"hide-narrow\">Duration</th><th scope=\"col\">Cost</th><th scope=\"col\" class=\"hide-narrow\">Run</th></tr></thead><tbody>");
    for r in rows.iter().skip(page * PAGE).take(PAGE) {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td class=\"hide-narrow\">{}</td><td>{} {}</td><td>{}</td><td class=\"hide-narrow\">{}</td><td>{}</td><td class=\"hide-narrow\">{}</td></tr>",
            when(r.ts_ms),
            esc(&r.tenant),
            esc(r.key_id.as_deref().unwrap_or("")),
            esc(&r.method),
            esc(&r.name),
            esc(&r.outcome),
            r.duration_us
                .map(|d| format!("{:.1} ms", d as f64 / 1000.0))
                .unwrap_or_default(),
            r.cost,
            r.run_id
                .as_deref()
                .map(|id| format!("<a href=\"/ui/runs/{}\">{}</a>", url_part(id), esc(id)))
                .unwrap_or_default(),
        );
    }
    b.push_str("</tbody></table></div><div class=\"pager\">");
    let base = if qs.is_empty() {
        String::new()
    } else {
        format!("{qs}&amp;")
    };
    if page > 0 {
        let _ = write!(b, "<a href=\"/ui/audit?{base}page={}\">Newer</a>", page - 1);
    }
    if (page + 1) * PAGE < rows.len() {
        let _ = write!(b, "<a href=\"/ui/audit?{base}page={}\">Older</a>", page + 1);
    }
    b.push_str("</div>");
    Ok(s.page("Audit", &b))
}

/// A CSV field, quoted when it needs to be (and a leading `=+-@` defused,
/// so a spreadsheet does not run it as a formula).
fn csv_field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@']) {
        format!("'{v}")
    } else {
        v.to_owned()
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

pub(crate) async fn export(
    State(app): State<Arc<App>>,
    s: Signed,
    Query(q): Query<AuditQuery>,
) -> Result<Response, UiError> {
    let rows = audit_rows(&app, &s, &q).await?;
    let (body, kind, ext) = match q.format.as_deref().unwrap_or("csv") {
        "json" => (
            serde_json::to_string(&rows).map_err(|e| UiError::bad(e.to_string()))?,
            "application/json",
            "json",
        ),
        "csv" => {
            let mut out = String::from(
                "id,time_ms,tenant,key_id,method,name,upstream,outcome,duration_us,cost,run_id,error\n",
            );
            for r in &rows {
                let fields = [
                    r.id.to_string(),
                    r.ts_ms.to_string(),
                    r.tenant.clone(),
                    r.key_id.clone().unwrap_or_default(),
                    r.method.clone(),
                    r.name.clone(),
                    r.upstream.clone().unwrap_or_default(),
                    r.outcome.clone(),
                    r.duration_us.map(|d| d.to_string()).unwrap_or_default(),
                    r.cost.to_string(),
                    r.run_id.clone().unwrap_or_default(),
                    r.error.clone().unwrap_or_default(),
                ];
                let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                out.push_str(&line.join(","));
                out.push('\n');
            }
            (out, "text/csv; charset=utf-8", "csv")
        }
        other => return Err(UiError::bad(format!("format {other:?}: csv or json"))),
    };
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"audit.{ext}\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_days_since_the_epoch() {
        assert_eq!(date_ms("from", "1970-01-01").ok(), Some(0));
        assert_eq!(date_ms("from", "2000-03-01").ok(), Some(11_017 * DAY));
        assert_eq!(date_ms("from", "2024-02-29").ok(), Some(19_782 * DAY));
        for bad in ["2023-02-29", "2024-13-01", "yesterday", "2024-1", ""] {
            assert!(date_ms("from", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=1+1"), "'=1+1");
    }

    #[test]
    fn series_keep_the_top_and_gather_the_rest() {
        let rows = vec![
            (0, "a".to_owned(), 5),
            (1, "b".to_owned(), 3),
            (1, "c".to_owned(), 1),
        ];
        let s = series_of(&rows, 2, 2);
        assert_eq!(s[0], ("a".to_owned(), vec![5, 0]));
        assert_eq!(s[1], ("b".to_owned(), vec![0, 3]));
        assert_eq!(s[2], ("other".to_owned(), vec![0, 1]));
    }
}
