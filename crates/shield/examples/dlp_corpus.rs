use mcp_shield::dlp::{injection, personal, secrets};
use std::collections::BTreeMap;
fn main() {
    let path = std::env::args().nth(1).expect("file");
    let show = std::env::args().nth(2).unwrap_or_default();
    let text = std::fs::read_to_string(path).expect("read");
    let mut stats: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for line in text.lines() {
        let row: serde_json::Value = serde_json::from_str(line).expect("json");
        let t = row["response"]["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or("");
        let cat = format!(
            "{} {}",
            row["label"].as_str().unwrap_or(""),
            row["category"].as_str().unwrap_or("")
        );
        let kind = row["kind"].as_str().unwrap_or("");
        let flagged = if kind == "secret" {
            !secrets::find(t).is_empty()
        } else {
            injection::inspect(t).injected()
        };
        let e = stats.entry(cat.clone()).or_default();
        e.0 += 1;
        if flagged {
            e.1 += 1;
        }
        let attack = row["label"] == "attack";
        if (show == "miss" && attack && !flagged) || (show == "fp" && !attack && flagged) {
            let what = if kind == "secret" {
                format!(
                    "{:?}",
                    secrets::find(t)
                        .iter()
                        .map(|m| (m.family, &t[m.start..m.end]))
                        .collect::<Vec<_>>()
                )
            } else {
                format!("{:?}", injection::inspect(t))
            };
            println!(
                "{} | {} | {}",
                cat,
                what,
                t.chars().take(300).collect::<String>().replace('\n', "\\n")
            );
        }
        if show == "pii" {
            let p = personal::find(t, &personal::PersonalType::ALL);
            if !p.is_empty() {
                println!(
                    "{cat} {:?}",
                    p.iter()
                        .map(|m| (m.kind.as_str(), &t[m.start..m.end]))
                        .collect::<Vec<_>>()
                );
            }
        }
    }
    for (k, (n, f)) in stats {
        println!("{k:40} {f:5}/{n:5} {:.1}%", 100.0 * f as f64 / n as f64);
    }
}
