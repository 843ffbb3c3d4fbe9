//! The core's logs to Python's `logging`, under the seed's logger names (`security.rate_limiter`,
//! `security.threat_detector`, ...).
//!
//! A tracing layer formats each event of the `security.*` targets (and the crate's own) into a
//! bounded queue; the package's log pump, an asyncio task, awaits [`waiting`] and hands what
//! [`drain`] returns to `logging.getLogger(target).log(level, message)`. The request path never
//! takes the GIL for a log line: it only pushes to the queue, and when the queue is full
//! (nobody drains it), the oldest lines give way and are counted.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{LazyLock, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// Lines held for the pump.
const MAX_LINES: usize = 10_000;

/// One log line: Python's level number, the logger name, the message.
pub type Line = (u8, String, String);

struct Queue {
    lines: Mutex<VecDeque<Line>>,
    dropped: AtomicU64,
    ready: tokio::sync::Notify,
    /// The lowest Python level passed on (20, INFO, until the package says otherwise).
    min_level: AtomicU8,
}

static QUEUE: LazyLock<Queue> = LazyLock::new(|| Queue {
    lines: Mutex::new(VecDeque::new()),
    dropped: AtomicU64::new(0),
    ready: tokio::sync::Notify::new(),
    min_level: AtomicU8::new(20),
});

fn python_level(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        Level::TRACE => 5,
    }
}

/// The message, then the other fields as `name=value`.
#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }
}

struct ToPython;

impl<S: Subscriber> Layer<S> for ToPython {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let metadata = event.metadata();
        let target = metadata.target();
        if !(target.starts_with("security") || target.starts_with("mcp_shield")) {
            return;
        }
        let level = python_level(metadata.level());
        if level < QUEUE.min_level.load(Ordering::Relaxed) {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        text.message.push_str(&text.fields);
        let logger = if target.starts_with("security") {
            target.to_string()
        } else {
            // The crate's module paths, as Python logger names.
            target.replace("::", ".")
        };
        let mut lines = QUEUE.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() >= MAX_LINES {
            lines.pop_front();
            QUEUE.dropped.fetch_add(1, Ordering::Relaxed);
        }
        lines.push_back((level, logger, text.message));
        drop(lines);
        QUEUE.ready.notify_one();
    }
}

/// Sends the process's tracing events here, unless a subscriber is already set.
pub fn install() {
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(ToPython));
}

/// The lowest Python level passed on (`logging.getLogger("security").getEffectiveLevel()`).
pub fn set_min_level(level: u8) {
    QUEUE.min_level.store(level, Ordering::Relaxed);
}

/// The lines queued, and how many gave way since the last call.
pub fn drain() -> (Vec<Line>, u64) {
    let lines: Vec<Line> = QUEUE
        .lines
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain(..)
        .collect();
    (lines, QUEUE.dropped.swap(0, Ordering::Relaxed))
}

/// Returns when there are lines to drain.
pub async fn waiting() {
    loop {
        let notified = QUEUE.ready.notified();
        if !QUEUE
            .lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
        {
            return;
        }
        notified.await;
    }
}
