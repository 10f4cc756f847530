//! Ledger entries for people: JSON (`--output json`) and readable text,
//! one field a line, times in UTC.

use vouch_ledger::entry::{Entry, Verdict};

/// The entry as JSON: its index, kind, and fields by their spec names
/// (spec/ledger.md, "Entries").
pub fn to_json(index: u64, entry: &Entry) -> serde_json::Value {
    match entry {
        Entry::Policy(p) => serde_json::json!({
            "index": index, "kind": "policy", "name": p.name, "version": p.version, "digest": p.digest.as_str(),
        }),
        Entry::Decision(d) => serde_json::json!({
            "index": index,
            "kind": "decision",
            "repo": d.repo,
            "digest": d.digest.as_str(),
            "media_type": d.media_type,
            "decision": match d.verdict { Verdict::Admit => "admit", Verdict::Deny => "deny" },
            "reasons": d.reasons,
            "signers": d.signers,
            "evidence": d.evidence.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
            "policy": d.policy.as_str(),
            "policy_index": d.policy_index,
            "time": d.time,
            "time_utc": utc(d.time),
        }),
        Entry::Tag(t) => serde_json::json!({
            "index": index, "kind": "tag", "repo": t.repo, "tag": t.tag, "digest": t.digest.as_str(),
            "previous": t.previous.as_ref().map(|p| p.as_str()),
        }),
        Entry::Delete(d) => serde_json::json!({
            "index": index, "kind": "delete", "repo": d.repo, "digest": d.digest.as_str(), "tag": d.tag,
        }),
    }
}

/// The JSON of [`to_json`] as lines of `field: value`.
pub fn to_text(json: &serde_json::Value) -> String {
    let mut out = String::new();
    for (k, v) in json.as_object().into_iter().flatten() {
        match v {
            serde_json::Value::Array(items) if items.is_empty() => out.push_str(&format!("{k}: (none)\n")),
            serde_json::Value::Array(items) => {
                out.push_str(&format!("{k}:\n"));
                for i in items {
                    out.push_str(&format!(
                        "  - {}\n",
                        i.as_str().map_or_else(|| i.to_string(), str::to_owned)
                    ));
                }
            }
            serde_json::Value::String(s) => out.push_str(&format!("{k}: {s}\n")),
            serde_json::Value::Null => out.push_str(&format!("{k}: (none)\n")),
            other => out.push_str(&format!("{k}: {other}\n")),
        }
    }
    out
}

/// Seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (the proleptic
/// Gregorian calendar; days to civil date after H. Hinnant's algorithm).
pub fn utc(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::utc(1_795_913_003), "2026-11-29T00:43:23Z");
    }
}
