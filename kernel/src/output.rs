//! The handle through which a running cell publishes output (streams, displays, in-place
//! updates, progress). The interpreter only sees this; the message core decides how events
//! become protocol messages.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::render::Bundle;

/// Largest piece of text sent in one stream message; longer text is split on line breaks.
const STREAM_CHUNK: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub enum OutputEvent {
    Stream { stderr: bool, text: String },
    Display { data: Bundle, display_id: Option<String> },
    Update { data: Bundle, display_id: String },
    Clear { wait: bool },
}

#[derive(Clone)]
pub struct Output {
    sink: Arc<dyn Fn(OutputEvent) + Send + Sync>,
    emitted: Arc<AtomicUsize>,
    /// Whether the magic running now is the cell's last (nothing will be shown after it).
    last_call: Arc<std::sync::atomic::AtomicBool>,
}

impl Output {
    pub fn new(sink: impl Fn(OutputEvent) + Send + Sync + 'static) -> Self {
        Self {
            sink: Arc::new(sink),
            emitted: Arc::new(AtomicUsize::new(0)),
            last_call: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        }
    }

    /// An output that goes nowhere (silent executions).
    pub fn discard() -> Self {
        Self::new(|_| {})
    }

    /// An output that records events, for tests.
    pub fn recording() -> (Self, Arc<std::sync::Mutex<Vec<OutputEvent>>>) {
        let events = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = events.clone();
        (Self::new(move |e| sink.lock().unwrap_or_else(|p| p.into_inner()).push(e)), events)
    }

    /// Tells the handle whether the magic about to run is the cell's last.
    pub fn set_last_call(&self, last: bool) {
        self.last_call.store(last, Ordering::SeqCst);
    }

    /// How many visible outputs this cell has produced so far.
    pub fn emitted(&self) -> usize {
        self.emitted.load(Ordering::SeqCst)
    }

    fn emit(&self, event: OutputEvent) {
        if !matches!(event, OutputEvent::Update { .. } | OutputEvent::Clear { .. }) {
            self.emitted.fetch_add(1, Ordering::SeqCst);
        }
        (self.sink)(event);
    }

    pub fn stdout(&self, text: &str) {
        self.stream(false, text);
    }

    pub fn stderr(&self, text: &str) {
        self.stream(true, text);
    }

    fn stream(&self, stderr: bool, text: &str) {
        let mut rest = text;
        while !rest.is_empty() {
            let mut cut = rest.len().min(STREAM_CHUNK);
            if cut < rest.len() {
                while !rest.is_char_boundary(cut) {
                    cut -= 1;
                }
                if let Some(nl) = rest[..cut].rfind('\n') {
                    cut = nl + 1;
                }
            }
            self.emit(OutputEvent::Stream { stderr, text: rest[..cut].to_string() });
            rest = &rest[cut..];
        }
    }

    pub fn display(&self, data: Bundle) {
        self.emit(OutputEvent::Display { data, display_id: None });
    }

    /// A display that later cells can redraw in place (`update_display` with the same id).
    pub fn display_as(&self, data: Bundle, display_id: &str) {
        self.emit(OutputEvent::Display { data, display_id: Some(display_id.to_string()) });
    }

    /// Redraws every display shown with `display_id`, wherever it is in the notebook.
    pub fn update_display(&self, data: Bundle, display_id: &str) {
        self.emit(OutputEvent::Update { data, display_id: display_id.to_string() });
    }

    /// Starts a progress display that is updated in place.
    pub fn progress(&self, data: Bundle) -> Progress {
        let before = self.emitted();
        let display_id = uuid::Uuid::new_v4().simple().to_string();
        self.emit(OutputEvent::Display { data, display_id: Some(display_id.clone()) });
        Progress { out: self.clone(), display_id, outputs_before: before }
    }
}

/// A live progress display.
pub struct Progress {
    out: Output,
    display_id: String,
    outputs_before: usize,
}

impl Progress {
    pub fn update(&self, data: Bundle) {
        self.out.emit(OutputEvent::Update { data, display_id: self.display_id.clone() });
    }

    /// Ends the progress with a one-line summary. When the progress is the cell's only
    /// output (nothing before it, and its magic is the cell's last) it clears itself and the
    /// summary is printed; otherwise the display becomes the summary, so the cell's other
    /// outputs stay.
    pub fn finish(self, summary: &str) {
        let alone = self.outputs_before == 0 && self.out.emitted() == 1 && self.out.last_call.load(Ordering::SeqCst);
        if alone {
            self.out.emit(OutputEvent::Clear { wait: false });
            self.out.stdout(&format!("{summary}\n"));
        } else {
            self.update(crate::render::text(summary));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_split_on_lines_and_rejoins_exactly() {
        let (out, events) = Output::recording();
        let text: String = (0..100_000).map(|i| format!("line {i} é\n")).collect();
        out.stdout(&text);
        let events = events.lock().unwrap();
        assert!(events.len() > 1);
        let mut joined = String::new();
        for e in events.iter() {
            let OutputEvent::Stream { text, .. } = e else { panic!() };
            assert!(text.len() <= STREAM_CHUNK && text.ends_with('\n'));
            joined.push_str(text);
        }
        assert_eq!(joined, text);
    }

    #[test]
    fn progress_alone_clears_itself_otherwise_becomes_summary() {
        let (out, events) = Output::recording();
        let p = out.progress(crate::render::text("0%"));
        p.update(crate::render::text("50%"));
        p.finish("done");
        let kinds: Vec<_> = events.lock().unwrap().iter().map(std::mem::discriminant).collect();
        assert_eq!(kinds.len(), 4);
        assert!(matches!(events.lock().unwrap()[2], OutputEvent::Clear { wait: false }));

        let (out, events) = Output::recording();
        out.stdout("earlier\n");
        out.progress(crate::render::text("0%")).finish("done");
        let last = events.lock().unwrap().last().cloned().unwrap();
        assert!(matches!(last, OutputEvent::Update { .. }));

        let (out, events) = Output::recording();
        out.set_last_call(false);
        out.progress(crate::render::text("0%")).finish("done");
        let last = events.lock().unwrap().last().cloned().unwrap();
        assert!(matches!(last, OutputEvent::Update { .. }), "more magics follow: no clearing");
    }
}
