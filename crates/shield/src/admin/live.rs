//! `GET /api/security/stream`: what happens, as it happens, as server-sent events.
//!
//! Authenticated like every admin call, by the `Authorization: Bearer` header. A browser's
//! `EventSource` cannot send that header, and a token in the URL would reach logs and
//! history, so the dashboard reads this stream with `fetch()` and a `ReadableStream` instead
//! (the same `text/event-stream` format, parsed by the page): the token only ever travels in
//! the header. Events:
//! - `incident`: a refusal or an observation, with its findings ([`Incident`]);
//! - `second`: the last second's requests and refusals ([`crate::timeline::Second`]);
//! - `emergency`: emergency mode switched (`{"enabled", "by"}`);
//! - `lists`: an entry added to or removed from a list (`{"op", "list", "network"}`);
//! - `lagged`: this stream fell behind and missed `missed` events.
//!
//! At most [`MAX_STREAMS`] are open at once (429 beyond); each holds a broadcast receiver
//! of bounded length and nothing else.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use http::StatusCode;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::decision::json_response;
use crate::events::SecurityEvent;
use crate::incidents::Incident;
use crate::shared::Core;

/// Live streams open at once.
pub const MAX_STREAMS: usize = 16;

/// Holds one of the [`MAX_STREAMS`] places while its stream is open.
struct Place(Arc<Core>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Live {
    place: Place,
    events: tokio::sync::broadcast::Receiver<Arc<SecurityEvent>>,
    ticks: tokio::time::Interval,
    last_second: u64,
}

impl Live {
    /// The next event to send, waiting for one; `None` when the system is gone.
    async fn next(&mut self) -> Option<Event> {
        loop {
            tokio::select! {
                received = self.events.recv() => match received {
                    Ok(event) => {
                        if let Some(event) = self.describe(&event) {
                            return Some(event);
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        return Event::default().event("lagged").json_data(json!({"missed": missed})).ok();
                    }
                    Err(RecvError::Closed) => return None,
                },
                _ = self.ticks.tick() => {
                    let latest = self
                        .place
                        .0
                        .timeline
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .latest();
                    if let Some(second) = latest.filter(|s| s.at > self.last_second) {
                        self.last_second = second.at;
                        return Event::default().event("second").json_data(second).ok();
                    }
                }
            }
        }
    }

    fn describe(&self, event: &SecurityEvent) -> Option<Event> {
        let core = &self.place.0;
        if let Some(mut incident) = Incident::from_event(event, core.clock.unix_ms()) {
            incident.country = core
                .geo
                .as_ref()
                .and_then(|g| g.lookup(incident.ip).country);
            return Event::default().event("incident").json_data(incident).ok();
        }
        let (name, data) = match event {
            SecurityEvent::EmergencyMode { enabled, by } => {
                ("emergency", json!({"enabled": enabled, "by": by}))
            }
            SecurityEvent::ListAdded { list, network, .. } => (
                "lists",
                json!({"op": "add", "list": list.as_str(), "network": crate::events::show_network(network)}),
            ),
            SecurityEvent::ListRemoved { list, network } => (
                "lists",
                json!({"op": "remove", "list": list.as_str(), "network": crate::events::show_network(network)}),
            ),
            _ => return None,
        };
        Event::default().event(name).json_data(data).ok()
    }
}

pub(super) async fn stream(State(core): State<Arc<Core>>) -> Response {
    if core.streams.fetch_add(1, Ordering::AcqRel) >= MAX_STREAMS {
        core.streams.fetch_sub(1, Ordering::AcqRel);
        return json_response(
            StatusCode::TOO_MANY_REQUESTS,
            &json!({"error": "Too many live streams", "detail": format!("at most {MAX_STREAMS} are open at once"), "type": "rate_limited"}),
        );
    }
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let last_second = core
        .timeline
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .latest()
        .map_or(0, |s| s.at);
    let live = Live {
        events: core.bus.subscribe(),
        place: Place(core),
        ticks,
        last_second,
    };
    let stream = futures_util::stream::unfold(live, |mut live| async move {
        let event = live.next().await?;
        Some((event, live))
    })
    .map(Ok::<_, Infallible>);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
