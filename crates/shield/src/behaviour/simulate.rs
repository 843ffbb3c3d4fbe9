//! A seeded traffic simulator: benign MCP clients and attackers, fed through the real client
//! table and model, to measure the anomaly score (precision, recall, ROC AUC).
//!
//! Benign: interactive agents (a few favourite tools, human pauses), batch jobs (bursts of one
//! or two tools every few minutes), health checkers (one path on a fixed interval), web
//! clients (pages and API reads, the odd 404). Hostile: scanners (hundreds of probe paths,
//! mostly 404), brute forcers (logins answered 401), scrapers (every item in order, rotating
//! user agents), low-and-slow enumerators (one probe every half minute), and a compromised
//! agent that behaves for twelve minutes and then calls every tool it can find.
//!
//! Time is simulated (an injected clock): twenty minutes of traffic run in well under a second.
//! `cargo run --release -p mcp-shield --example traffic_simulator` prints the report.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use super::forest::SplitMix64;
use super::{
    BehaviourAnalysis, BehaviourSettings, ClientKey, MethodClass, Observation, MIN_REQUESTS,
};
use crate::clock::{Clock, ManualClock};
use crate::events::EventBus;

/// What kind of client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientKind {
    /// An agent used by a person: a few tools, pauses to think.
    InteractiveAgent,
    /// A scheduled job: bursts of one or two tools.
    BatchJob,
    /// A monitor: one path on a fixed interval.
    HealthChecker,
    /// A browser or API client reading pages.
    WebClient,
    /// Probe paths, mostly 404.
    Scanner,
    /// Logins answered 401.
    BruteForcer,
    /// Every item in order, rotating user agents.
    Scraper,
    /// One probe every half minute.
    SlowEnumerator,
    /// Normal for a while, then every tool.
    CompromisedAgent,
}

impl ClientKind {
    /// Every kind, benign first.
    pub const ALL: [ClientKind; 9] = [
        ClientKind::InteractiveAgent,
        ClientKind::BatchJob,
        ClientKind::HealthChecker,
        ClientKind::WebClient,
        ClientKind::Scanner,
        ClientKind::BruteForcer,
        ClientKind::Scraper,
        ClientKind::SlowEnumerator,
        ClientKind::CompromisedAgent,
    ];

    /// Whether this kind is an attacker.
    pub fn is_attack(self) -> bool {
        matches!(
            self,
            ClientKind::Scanner
                | ClientKind::BruteForcer
                | ClientKind::Scraper
                | ClientKind::SlowEnumerator
                | ClientKind::CompromisedAgent
        )
    }

    /// A name for reports.
    pub fn name(self) -> &'static str {
        match self {
            ClientKind::InteractiveAgent => "interactive agent",
            ClientKind::BatchJob => "batch job",
            ClientKind::HealthChecker => "health checker",
            ClientKind::WebClient => "web client",
            ClientKind::Scanner => "scanner",
            ClientKind::BruteForcer => "brute forcer",
            ClientKind::Scraper => "scraper",
            ClientKind::SlowEnumerator => "low-and-slow enumerator",
            ClientKind::CompromisedAgent => "compromised agent",
        }
    }

    fn default_count(self) -> usize {
        match self {
            ClientKind::InteractiveAgent => 120,
            ClientKind::BatchJob => 30,
            ClientKind::HealthChecker => 20,
            ClientKind::WebClient => 40,
            ClientKind::Scanner => 6,
            ClientKind::BruteForcer => 4,
            ClientKind::Scraper => 4,
            ClientKind::SlowEnumerator => 4,
            ClientKind::CompromisedAgent => 4,
        }
    }
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimulationConfig {
    /// The seed of both the traffic and the model.
    pub seed: u64,
    /// Clients of each kind.
    pub clients: Vec<(ClientKind, usize)>,
    /// Simulated minutes.
    pub minutes: u64,
    /// Minutes between retrain-and-score passes.
    pub pass_minutes: u64,
    /// The analysis settings (threshold, window).
    pub settings: BehaviourSettings,
}

impl Default for SimulationConfig {
    fn default() -> Self {
        SimulationConfig {
            seed: 7,
            clients: ClientKind::ALL
                .iter()
                .map(|k| (*k, k.default_count()))
                .collect(),
            minutes: 20,
            pass_minutes: 2,
            settings: BehaviourSettings::default(),
        }
    }
}

/// One client's outcome.
#[derive(Debug, Clone)]
pub struct ClientResult {
    /// What it was.
    pub kind: ClientKind,
    /// Its highest score over the passes that saw it active (None: never scored).
    pub max_score: Option<f64>,
    /// The classes the last pass that saw it named.
    pub classes: Vec<&'static str>,
}

/// What the simulation measured.
#[derive(Debug, Clone)]
pub struct SimulationReport {
    /// Every client.
    pub clients: Vec<ClientResult>,
    /// The threshold used.
    pub threshold: f64,
    /// Requests simulated.
    pub requests: usize,
}

impl SimulationReport {
    fn scored(&self) -> impl Iterator<Item = (bool, f64)> + '_ {
        self.clients
            .iter()
            .filter_map(|c| c.max_score.map(|s| (c.kind.is_attack(), s)))
    }

    /// Area under the ROC curve of the score (attackers as positives): the chance that a
    /// random attacker scores above a random benign client (ties count a half).
    pub fn auc(&self) -> f64 {
        let attacks: Vec<f64> = self.scored().filter(|s| s.0).map(|s| s.1).collect();
        let benign: Vec<f64> = self.scored().filter(|s| !s.0).map(|s| s.1).collect();
        if attacks.is_empty() || benign.is_empty() {
            return 0.0;
        }
        let mut wins = 0.0;
        for a in &attacks {
            for b in &benign {
                wins += if a > b {
                    1.0
                } else if a == b {
                    0.5
                } else {
                    0.0
                };
            }
        }
        wins / (attacks.len() * benign.len()) as f64
    }

    /// (true positives, false positives, false negatives) at the threshold.
    pub fn confusion(&self) -> (usize, usize, usize) {
        self.confusion_at(self.threshold)
    }

    /// The same at another threshold.
    pub fn confusion_at(&self, threshold: f64) -> (usize, usize, usize) {
        let mut tp = 0;
        let mut fp = 0;
        let mut fn_ = 0;
        for c in &self.clients {
            let flagged = c.max_score.is_some_and(|s| s >= threshold);
            match (c.kind.is_attack(), flagged) {
                (true, true) => tp += 1,
                (false, true) => fp += 1,
                (true, false) => fn_ += 1,
                _ => {}
            }
        }
        (tp, fp, fn_)
    }

    /// Share of flagged clients that are attackers.
    pub fn precision(&self) -> f64 {
        precision_recall(self.confusion()).0
    }

    /// Share of attackers flagged.
    pub fn recall(&self) -> f64 {
        precision_recall(self.confusion()).1
    }

    /// Per kind: clients, flagged, and the lowest, median and highest of their scores.
    pub fn by_kind(&self) -> Vec<(ClientKind, usize, usize, [f64; 3])> {
        ClientKind::ALL
            .iter()
            .filter_map(|kind| {
                let mut scores: Vec<f64> = self
                    .clients
                    .iter()
                    .filter(|c| c.kind == *kind)
                    .map(|c| c.max_score.unwrap_or(0.0))
                    .collect();
                if scores.is_empty() {
                    return None;
                }
                scores.sort_by(f64::total_cmp);
                let flagged = scores.iter().filter(|s| **s >= self.threshold).count();
                let spread = [
                    scores[0],
                    scores[scores.len() / 2],
                    scores[scores.len() - 1],
                ];
                Some((*kind, scores.len(), flagged, spread))
            })
            .collect()
    }

    /// The report as Markdown (for docs/DETECTION.md).
    pub fn markdown(&self, config: &SimulationConfig) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "Seed {}, {} clients, {} simulated minutes, {} requests; model retrained and every active client scored every {} minutes; a client's score is its highest.\n\n",
            config.seed,
            self.clients.len(),
            config.minutes,
            self.requests,
            config.pass_minutes
        ));
        out.push_str(&format!("ROC AUC: **{:.3}**.\n\n", self.auc()));
        out.push_str("| threshold | precision | recall | attackers flagged | benign flagged |\n| --- | --- | --- | --- | --- |\n");
        let benign = self.clients.iter().filter(|c| !c.kind.is_attack()).count();
        for threshold in [self.threshold, 0.65, 0.6] {
            let (tp, fp, fn_) = self.confusion_at(threshold);
            let (precision, recall) = precision_recall((tp, fp, fn_));
            out.push_str(&format!(
                "| {threshold}{} | {precision:.3} | {recall:.3} | {tp} of {} | {fp} of {benign} |\n",
                if threshold == self.threshold { " (the setting)" } else { "" },
                tp + fn_,
            ));
        }
        out.push('\n');
        out.push_str("| client kind | clients | flagged | lowest score | median | highest |\n| --- | --- | --- | --- | --- | --- |\n");
        for (kind, n, flagged, [low, median, high]) in self.by_kind() {
            out.push_str(&format!(
                "| {}{} | {n} | {flagged} | {low:.2} | {median:.2} | {high:.2} |\n",
                kind.name(),
                if kind.is_attack() { " (attack)" } else { "" }
            ));
        }
        out
    }
}

/// Precision and recall from (true positives, false positives, false negatives); 1 when
/// nothing was flagged or there was nothing to find.
fn precision_recall((tp, fp, fn_): (usize, usize, usize)) -> (f64, f64) {
    let share = |n: usize, d: usize| if d == 0 { 1.0 } else { n as f64 / d as f64 };
    (share(tp, tp + fp), share(tp, tp + fn_))
}

const TOOLS: [&str; 14] = [
    "search",
    "read_file",
    "write_file",
    "list_dir",
    "run_sql",
    "fetch_url",
    "send_email",
    "create_issue",
    "get_weather",
    "summarize",
    "translate",
    "delete_file",
    "export_data",
    "admin_reset",
];

const PROBES: [&str; 16] = [
    "/.env",
    "/.git/config",
    "/wp-admin/",
    "/wp-login.php",
    "/admin",
    "/phpmyadmin/",
    "/server-status",
    "/config.json",
    "/backup.zip",
    "/.aws/credentials",
    "/actuator/env",
    "/api/v1/users",
    "/debug",
    "/console",
    "/.DS_Store",
    "/cgi-bin/test.cgi",
];

/// One simulated request.
#[derive(Debug, Clone)]
struct Event {
    at_ms: u64,
    client: usize,
    path: String,
    method: MethodClass,
    tool: Option<&'static str>,
    status: u16,
    body_bytes: u64,
    user_agent: u64,
    threats: u32,
}

/// Exponentially distributed, mean `mean`.
fn exponential(rng: &mut SplitMix64, mean: f64) -> f64 {
    -mean * (1.0 - rng.next_f64()).ln()
}

fn uniform(rng: &mut SplitMix64, lo: f64, hi: f64) -> f64 {
    lo + rng.next_f64() * (hi - lo)
}

struct Emitter<'a> {
    events: &'a mut Vec<Event>,
    client: usize,
    end_ms: u64,
}

impl Emitter<'_> {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        at: f64,
        path: impl Into<String>,
        method: MethodClass,
        tool: Option<&'static str>,
        status: u16,
        body_bytes: u64,
        user_agent: u64,
        threats: u32,
    ) -> bool {
        let at_ms = at as u64;
        if at_ms >= self.end_ms {
            return false;
        }
        self.events.push(Event {
            at_ms,
            client: self.client,
            path: path.into(),
            method,
            tool,
            status,
            body_bytes,
            user_agent,
            threats,
        });
        true
    }
}

/// An agent session: initialize, list tools, then calls to a few favourite tools.
fn agent(rng: &mut SplitMix64, out: &mut Emitter<'_>, from: f64, until: f64, ua: u64) -> f64 {
    let favourites: Vec<&'static str> = (0..2 + rng.below(3))
        .map(|_| TOOLS[rng.below(10)])
        .collect();
    let mut t = from;
    out.push(t, "/mcp", MethodClass::Initialize, None, 200, 250, ua, 0);
    t += uniform(rng, 100.0, 600.0);
    out.push(t, "/mcp", MethodClass::ToolsList, None, 200, 80, ua, 0);
    while t < until {
        // A person reads, thinks, types: mostly seconds, sometimes a minute or two.
        t += if rng.next_f64() < 0.15 {
            uniform(rng, 30_000.0, 120_000.0)
        } else {
            exponential(rng, 6_000.0) + 500.0
        };
        let roll = rng.next_f64();
        let (method, tool) = if roll < 0.85 {
            (
                MethodClass::ToolsCall,
                Some(favourites[rng.below(favourites.len())]),
            )
        } else if roll < 0.93 {
            (MethodClass::Resources, None)
        } else {
            (MethodClass::Prompts, None)
        };
        let status = if rng.next_f64() < 0.02 { 400 } else { 200 };
        let body = 300 + rng.below(2500) as u64;
        if !out.push(t, "/mcp", method, tool, status, body, ua, 0) {
            break;
        }
    }
    t
}

fn simulate_client(kind: ClientKind, rng: &mut SplitMix64, out: &mut Emitter<'_>, minutes: u64) {
    let end = (minutes * 60_000) as f64;
    let ua = rng.next_u64() | 1;
    match kind {
        ClientKind::InteractiveAgent => {
            let start = uniform(rng, 0.0, 120_000.0);
            agent(rng, out, start, end, ua);
        }
        ClientKind::BatchJob => {
            let every = uniform(rng, 120_000.0, 300_000.0);
            let tools = [TOOLS[rng.below(10)], TOOLS[rng.below(10)]];
            let mut run = uniform(rng, 0.0, every);
            while run < end {
                let calls = 30 + rng.below(120);
                let mut t = run;
                out.push(t, "/mcp", MethodClass::Initialize, None, 200, 250, ua, 0);
                for _ in 0..calls {
                    t += uniform(rng, 150.0, 600.0);
                    let tool = tools[rng.below(2)];
                    let status = if rng.next_f64() < 0.01 { 500 } else { 200 };
                    let body = 2000 + rng.below(8000) as u64;
                    out.push(
                        t,
                        "/mcp",
                        MethodClass::ToolsCall,
                        Some(tool),
                        status,
                        body,
                        ua,
                        0,
                    );
                }
                run += every;
            }
        }
        ClientKind::HealthChecker => {
            let every = [5_000.0, 10_000.0, 15_000.0, 30_000.0][rng.below(4)];
            let path = ["/health", "/ready", "/mcp"][rng.below(3)];
            let mut t = uniform(rng, 0.0, every);
            while out.push(t, path, MethodClass::Http, None, 200, 0, ua, 0) {
                t += every * uniform(rng, 0.995, 1.005);
            }
        }
        ClientKind::WebClient => {
            let mut t = uniform(rng, 0.0, 300_000.0);
            loop {
                t += exponential(rng, 5_000.0) + 300.0;
                let page = rng.below(400);
                let (path, status) = if rng.next_f64() < 0.03 {
                    (format!("/docs/old-page-{page}"), 404)
                } else if rng.next_f64() < 0.5 {
                    (format!("/docs/guide-{}", page % 40), 200)
                } else {
                    (format!("/api/items/{}", page % 60), 200)
                };
                if !out.push(t, path, MethodClass::Http, None, status, 0, ua, 0) {
                    break;
                }
            }
        }
        ClientKind::Scanner => {
            let mut t = uniform(rng, 60_000.0, end - 300_000.0);
            let stop = t + uniform(rng, 120_000.0, 300_000.0);
            let mut n = 0usize;
            while t < stop {
                t += uniform(rng, 80.0, 400.0);
                let path = if n < PROBES.len() {
                    PROBES[n].to_string()
                } else {
                    format!(
                        "/{}/{}",
                        ["admin", "backup", "old", "test", "api"][n % 5],
                        n
                    )
                };
                let status = if rng.next_f64() < 0.9 { 404 } else { 403 };
                let threats = u32::from(rng.next_f64() < 0.05);
                if !out.push(t, path, MethodClass::Http, None, status, 0, ua, threats) {
                    break;
                }
                n += 1;
            }
        }
        ClientKind::BruteForcer => {
            let mut t = uniform(rng, 60_000.0, end - 300_000.0);
            let stop = t + uniform(rng, 180_000.0, 400_000.0);
            while t < stop {
                t += uniform(rng, 200.0, 900.0);
                let status = if rng.next_f64() < 0.98 { 401 } else { 200 };
                if !out.push(t, "/login", MethodClass::Http, None, status, 90, ua, 0) {
                    break;
                }
            }
        }
        ClientKind::Scraper => {
            let mut t = uniform(rng, 60_000.0, end - 300_000.0);
            let stop = t + uniform(rng, 180_000.0, 400_000.0);
            let mut agent_ua = ua;
            let mut item = rng.below(1000);
            while t < stop {
                t += uniform(rng, 100.0, 500.0);
                item += 1;
                if item % 25 == 0 {
                    agent_ua = rng.next_u64() | 1;
                }
                let status = if rng.next_f64() < 0.05 { 404 } else { 200 };
                if !out.push(
                    t,
                    format!("/api/items/{item}"),
                    MethodClass::Http,
                    None,
                    status,
                    0,
                    agent_ua,
                    0,
                ) {
                    break;
                }
            }
        }
        ClientKind::SlowEnumerator => {
            let mut t = uniform(rng, 0.0, 120_000.0);
            let mut n = rng.below(100);
            loop {
                t += uniform(rng, 15_000.0, 45_000.0);
                n += 1;
                let path = format!(
                    "/{}/{}.bak",
                    ["files", "uploads", "export", "users"][n % 4],
                    n
                );
                let status = if rng.next_f64() < 0.85 { 404 } else { 403 };
                if !out.push(t, path, MethodClass::Http, None, status, 0, ua, 0) {
                    break;
                }
            }
        }
        ClientKind::CompromisedAgent => {
            let start = uniform(rng, 0.0, 120_000.0);
            let turn = (12 * 60_000) as f64;
            let mut t = agent(rng, out, start, turn, ua);
            // Hijacked: every tool, quickly, with probing arguments the tools refuse.
            let stop = t + uniform(rng, 120_000.0, 240_000.0);
            while t < stop {
                t += uniform(rng, 500.0, 2_500.0);
                let tool = TOOLS[rng.below(TOOLS.len())];
                let status = if rng.next_f64() < 0.25 { 403 } else { 200 };
                let threats = u32::from(rng.next_f64() < 0.2);
                let body = 200 + rng.below(800) as u64;
                if !out.push(
                    t,
                    "/mcp",
                    MethodClass::ToolsCall,
                    Some(tool),
                    status,
                    body,
                    ua,
                    threats,
                ) {
                    break;
                }
            }
        }
    }
}

fn move_to(clock: &ManualClock, unix_ms: u64) {
    let now = clock.unix_ms();
    if unix_ms > now {
        clock.advance(std::time::Duration::from_millis(unix_ms - now));
    }
}

/// Runs the simulation.
pub fn run(config: &SimulationConfig) -> SimulationReport {
    let mut rng = SplitMix64::new(config.seed);
    let mut kinds = Vec::new();
    let mut events = Vec::new();
    let end_ms = config.minutes * 60_000;
    for (kind, count) in &config.clients {
        for _ in 0..*count {
            let client = kinds.len();
            kinds.push(*kind);
            let mut emitter = Emitter {
                events: &mut events,
                client,
                end_ms,
            };
            simulate_client(*kind, &mut rng, &mut emitter, config.minutes);
        }
    }
    events.sort_by_key(|e| (e.at_ms, e.client));
    let start_ms = 1_800_000_000_000;
    let clock = ManualClock::starting_at(start_ms);
    let settings = BehaviourSettings {
        seed: config.seed,
        table_keys: Some((config.seed, !config.seed)),
        max_clients: (kinds.len() * 4).max(1024),
        ..config.settings.clone()
    };
    let (table, _) = BehaviourAnalysis::table_for(&settings, clock.clone());
    let bus = Arc::new(EventBus::new(Vec::new(), 16));
    let analysis = BehaviourAnalysis::with_table(table, settings, None, bus, clock.clone())
        .expect("no data dir, nothing to load");
    let key = |client: usize| {
        let n = client as u32 + 1;
        ClientKey::Ip(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | n)))
    };
    let mut max_scores: Vec<Option<f64>> = vec![None; kinds.len()];
    let mut classes: Vec<Vec<&'static str>> = vec![Vec::new(); kinds.len()];
    let pass_ms = config.pass_minutes.max(1) * 60_000;
    let mut next_pass = pass_ms.max(config.settings.window_ms / 2);
    let mut pass = |now_rel: u64, analysis: &BehaviourAnalysis| {
        move_to(&clock, start_ms + now_rel);
        if analysis.train().unwrap_or(false) {
            for (i, score) in max_scores.iter_mut().enumerate() {
                let Some(report) = analysis.report(key(i).ip()) else {
                    continue;
                };
                if report.counts.requests < MIN_REQUESTS
                    || clock.unix_ms().saturating_sub(
                        analysis
                            .table()
                            .features(key(i), clock.unix_ms())
                            .map_or(0, |f| f.last_seen_ms),
                    ) >= analysis.settings().window_ms
                {
                    continue;
                }
                if let Some(s) = report.anomaly_score {
                    *score = Some(score.map_or(s, |m: f64| m.max(s)));
                }
                classes[i] = report.classes.iter().map(|c| c.class).collect();
            }
        }
    };
    for e in &events {
        while e.at_ms >= next_pass {
            pass(next_pass, &analysis);
            next_pass += pass_ms;
        }
        move_to(&clock, start_ms + e.at_ms);
        analysis.table().observe(
            key(e.client),
            &Observation {
                at_ms: start_ms + e.at_ms,
                path: &e.path,
                method: e.method,
                tool: e.tool,
                status: e.status,
                body_bytes: e.body_bytes,
                user_agent: e.user_agent,
                threats: e.threats,
            },
        );
    }
    while next_pass <= end_ms {
        pass(next_pass, &analysis);
        next_pass += pass_ms;
    }
    SimulationReport {
        clients: kinds
            .iter()
            .zip(max_scores)
            .zip(classes)
            .map(|((kind, max_score), classes)| ClientResult {
                kind: *kind,
                max_score,
                classes,
            })
            .collect(),
        threshold: config.settings.threshold,
        requests: events.len(),
    }
}
