//! Runs the seeded traffic simulator (benign MCP clients and attackers) through the client
//! table and the anomaly model, and prints precision, recall and ROC AUC of the score.
//!
//! `cargo run --release -p mcp-shield --example traffic_simulator [-- --seed N]`

use mcp_shield::behaviour::simulate::{run, SimulationConfig};

fn main() {
    let mut config = SimulationConfig::default();
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--seed") {
        match args.get(i + 1).map(|s| s.parse::<u64>()) {
            Some(Ok(seed)) => config.seed = seed,
            _ => {
                eprintln!("--seed takes a number");
                std::process::exit(2);
            }
        }
    }
    let report = run(&config);
    print!("{}", report.markdown(&config));
}
