//! The trace of a run: one line per significant event, `[sim time] node: event`, and its hash.
//!
//! Faults injected by the harness are recorded directly; everything the system itself reports at INFO or above
//! through `tracing` is captured by [`TraceLayer`], stamped with simulated time and the madsim node it ran on.
//! Same seed, same lines, same hash: the hash identifies a run.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// A shared, append-only list of trace lines.
#[derive(Clone, Default)]
pub struct Trace {
    inner: Arc<Mutex<TraceInner>>,
}

#[derive(Default)]
struct TraceInner {
    lines: Vec<String>,
    /// The instant simulated time is measured from (set when the run starts).
    origin: Option<tokio::time::Instant>,
    /// The time of the newest line.
    last_at: Duration,
    /// Set once the run's result is in: what its processes do while they are torn down is no part of it.
    sealed: bool,
}

impl TraceInner {
    fn push(&mut self, at: Duration, node: &str, event: impl std::fmt::Display) {
        self.last_at = at;
        self.lines.push(format_line(at, node, &event.to_string()));
    }
}

impl Trace {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the clock of the trace; called once inside the runtime, before anything happens.
    pub fn start_clock(&self) {
        self.lock().origin = Some(tokio::time::Instant::now());
    }

    /// A panic in the run can poison the lock; the lines are append-only, so what they hold stays readable.
    fn lock(&self) -> std::sync::MutexGuard<'_, TraceInner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Simulated time since the run started (zero before the clock started).
    pub fn elapsed(&self) -> Duration {
        self.lock().origin.map(|o| o.elapsed()).unwrap_or_default()
    }

    /// Appends one event on behalf of `node`.
    pub fn record(&self, node: &str, event: impl std::fmt::Display) {
        let mut inner = self.lock();
        if inner.sealed {
            return;
        }
        let at = inner.origin.map(|o| o.elapsed()).unwrap_or_default();
        inner.push(at, node, event);
    }

    /// Ends the run's trace: later [`Trace::record`] calls add nothing (the processes' teardown).
    pub fn seal(&self) {
        self.lock().sealed = true;
    }

    /// Appends one event after the run's runtime is gone (no clock to read): stamped with the last line's time.
    pub fn record_after_end(&self, node: &str, event: impl std::fmt::Display) {
        let mut inner = self.lock();
        let at = inner.last_at;
        inner.push(at, node, event);
    }

    pub fn lines(&self) -> Vec<String> {
        self.lock().lines.clone()
    }

    pub fn len(&self) -> usize {
        self.lock().lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// FNV-1a over every line, newline-terminated: stable across builds and platforms.
    pub fn hash(&self) -> u64 {
        hash_lines(&self.lock().lines)
    }

    /// Lines containing `needle`.
    pub fn grep(&self, needle: &str) -> Vec<String> {
        self.lock().lines.iter().filter(|l| l.contains(needle)).cloned().collect()
    }

    /// The whole trace as text, one event per line.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for l in &self.lock().lines {
            out.push_str(l);
            out.push('\n');
        }
        out
    }
}

/// `[   12.345678s] node: event`
pub fn format_line(at: Duration, node: &str, event: &str) -> String {
    format!("[{:>8}.{:06}s] {node}: {event}", at.as_secs(), at.subsec_micros())
}

/// FNV-1a 64 of the lines, each followed by a newline.
pub fn hash_lines(lines: &[String]) -> u64 {
    use std::hash::Hasher;
    let mut h = fnv::FnvHasher::default();
    for l in lines {
        h.write(l.as_bytes());
        h.write(b"\n");
    }
    h.finish()
}

/// Captures INFO-and-above events from the system into a [`Trace`].
pub struct TraceLayer {
    trace: Trace,
}

impl TraceLayer {
    pub fn new(trace: Trace) -> Self {
        Self { trace }
    }
}

/// The madsim node a span belongs to (madsim opens a `node` span with a `name` field per node).
struct NodeName(String);

#[derive(Default)]
struct NameVisitor(Option<String>);

impl Visit for NameVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "name" {
            self.0 = Some(value.to_string());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "name" && self.0.is_none() {
            self.0 = Some(format!("{value:?}").trim_matches('"').to_string());
        }
    }
}

/// Renders an event as `message k=v k=v`.
#[derive(Default)]
struct EventVisitor {
    message: String,
    fields: String,
}

impl Visit for EventVisitor {
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

impl<S> Layer<S> for TraceLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, id: &tracing::span::Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "node" {
            return;
        }
        let mut v = NameVisitor::default();
        attrs.record(&mut v);
        if let (Some(name), Some(span)) = (v.0, ctx.span(id)) {
            span.extensions_mut().insert(NodeName(name));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if *event.metadata().level() > Level::INFO {
            return;
        }
        let node = ctx
            .event_scope(event)
            .and_then(|scope| scope.from_root().find_map(|s| s.extensions().get::<NodeName>().map(|n| n.0.clone())))
            .unwrap_or_else(|| "main".to_string());
        record_event(&self.trace, &node, event);
    }
}

/// Appends `event` as `[LEVEL ]message k=v ...` on behalf of `node`.
fn record_event(trace: &Trace, node: &str, event: &Event<'_>) {
    let mut v = EventVisitor::default();
    event.record(&mut v);
    let level = match *event.metadata().level() {
        Level::ERROR => "ERROR ",
        Level::WARN => "WARN ",
        _ => "",
    };
    trace.record(node, format_args!("{level}{}{}", v.message, v.fields));
}

/// The subscriber of a run that prints nothing: the same lines as [`TraceLayer`] on a registry, at a fraction of
/// the cost. madsim opens a span per task and enters it at every poll; the registry keeps each span's data in a
/// sharded slab, which cost about 5 % of the reference benchmark's time. Knowing which node an event ran on needs far less: per
/// span, its node's name and a reference count, and the stack of entered spans. Spans and events below INFO
/// are disabled, as they are for the layer.
pub struct TraceSubscriber {
    trace: Trace,
    spans: Mutex<SpanBook>,
}

#[derive(Default)]
struct SpanBook {
    /// Span `id` lives in slot `id - 1`; closed slots are reused.
    slots: Vec<SpanSlot>,
    free: Vec<usize>,
    /// Entered spans, innermost last.
    entered: Vec<u64>,
}

struct SpanSlot {
    /// The name of the madsim node the span belongs to: its own for a `node` span, else its parent's.
    node: Option<Arc<str>>,
    refs: usize,
}

impl SpanBook {
    fn slot(&mut self, id: &tracing::span::Id) -> Option<&mut SpanSlot> {
        self.slots.get_mut(id.into_u64() as usize - 1)
    }

    fn node_of(&self, id: u64) -> Option<Arc<str>> {
        self.slots.get(id as usize - 1).and_then(|s| s.node.clone())
    }

    fn current_node(&self) -> Option<Arc<str>> {
        self.entered.last().and_then(|&id| self.node_of(id))
    }
}

impl TraceSubscriber {
    pub fn new(trace: Trace) -> Self {
        Self { trace, spans: Mutex::new(SpanBook::default()) }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, SpanBook> {
        self.spans.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Subscriber for TraceSubscriber {
    fn register_callsite(&self, metadata: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        if self.enabled(metadata) {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= Level::INFO
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::INFO)
    }

    fn new_span(&self, attrs: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut book = self.book();
        let node = if attrs.metadata().name() == "node" {
            let mut v = NameVisitor::default();
            attrs.record(&mut v);
            v.0.map(Arc::from)
        } else if let Some(parent) = attrs.parent() {
            book.node_of(parent.into_u64())
        } else if attrs.is_contextual() {
            book.current_node()
        } else {
            None
        };
        let slot = SpanSlot { node, refs: 1 };
        let index = match book.free.pop() {
            Some(i) => {
                book.slots[i] = slot;
                i
            }
            None => {
                book.slots.push(slot);
                book.slots.len() - 1
            }
        };
        tracing::span::Id::from_u64(index as u64 + 1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let node = {
            let book = self.book();
            match event.parent() {
                Some(parent) => book.node_of(parent.into_u64()),
                None if event.is_contextual() => book.current_node(),
                None => None,
            }
        };
        record_event(&self.trace, node.as_deref().unwrap_or("main"), event);
    }

    fn enter(&self, id: &tracing::span::Id) {
        self.book().entered.push(id.into_u64());
    }

    fn exit(&self, id: &tracing::span::Id) {
        let mut book = self.book();
        if let Some(at) = book.entered.iter().rposition(|&e| e == id.into_u64()) {
            book.entered.remove(at);
        }
    }

    fn clone_span(&self, id: &tracing::span::Id) -> tracing::span::Id {
        if let Some(slot) = self.book().slot(id) {
            slot.refs += 1;
        }
        id.clone()
    }

    fn try_close(&self, id: tracing::span::Id) -> bool {
        let mut book = self.book();
        let Some(slot) = book.slot(&id).filter(|s| s.refs > 0) else { return false };
        slot.refs -= 1;
        if slot.refs > 0 {
            return false;
        }
        slot.node = None;
        book.free.push(id.into_u64() as usize - 1);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_hash_are_stable() {
        assert_eq!(format_line(Duration::from_micros(1_234_567), "tablet-1", "up"), "[       1.234567s] tablet-1: up");
        let a = vec!["x".to_string(), "y".to_string()];
        let b = vec!["x".to_string(), "z".to_string()];
        assert_eq!(hash_lines(&a), hash_lines(&a.clone()));
        assert_ne!(hash_lines(&a), hash_lines(&b));
        // FNV-1a 64 of the empty input is its offset basis: a fixed value, not a per-process one.
        assert_eq!(hash_lines(&[]), 0xcbf2_9ce4_8422_2325);
    }

    #[test]
    fn a_sealed_trace_takes_no_more_lines() {
        let t = Trace::new();
        t.record("tablet-1", "up");
        let hash = t.hash();
        t.seal();
        t.record("tablet-1", "stepped down while torn down");
        assert_eq!((t.len(), t.hash()), (1, hash));
    }
}
