//! The gateway process as the integration tests drive it: started with arguments and an
//! environment of their choosing, its address read from its log, its log kept for assertions.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_mcp-shield");

pub const TOKEN: &str = "gateway-test-token-0123456789";

/// A running gateway process, killed on drop.
pub struct Gateway {
    pub child: Child,
    pub addr: SocketAddr,
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl Gateway {
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Gateway {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SECURITY_ADMIN_TOKEN", TOKEN)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start mcp-shield");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<SocketAddr>();
        // Both streams are drained for the life of the process, so it never blocks on a
        // full pipe; the listening address is read from either (serve logs it, demo prints it).
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let logs = logs.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    for marker in ["listening on ", "gateway on http://"] {
                        if let Some(rest) = line.split(marker).nth(1) {
                            let word = rest
                                .split_whitespace()
                                .next()
                                .unwrap_or("")
                                .trim_end_matches(',');
                            let word = word
                                .strip_prefix("https://")
                                .or_else(|| word.strip_prefix("http://"))
                                .unwrap_or(word);
                            if let Ok(addr) = word.parse() {
                                let _ = tx.send(addr);
                            }
                        }
                    }
                    logs.lock().expect("logs").push(line);
                }
            });
        }
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!("gateway did not start: {:?}", logs.lock().expect("logs"));
            }
        };
        Gateway { child, addr, logs }
    }

    pub fn serve(upstream: &str, listen: &str, env: &[(&str, &str)]) -> Gateway {
        Gateway::start(&["serve", "--upstream", upstream, "--listen", listen], env)
    }

    pub fn log_text(&self) -> String {
        self.logs.lock().expect("logs").join("\n")
    }

    /// Waits (up to five seconds) for a log line containing `text`: the process writes its
    /// log and a reader thread collects it, so a line can trail the response it belongs to.
    pub fn assert_logged(&self, text: &str) {
        let started = Instant::now();
        while !self.log_text().contains(text) {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "no log line with {text:?} in:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
