//! The single writer: owns the SQLite connection and applies one batch (one request) per
//! transaction. Handlers reach it through a bounded queue so memory stays bounded under load.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use super::metrics::{inc, Stats};
use crate::otlp::SpanRow;
use crate::store::{Store, StoreError};

/// One request's spans and where to send the outcome.
pub struct Batch {
    /// Spans to store.
    pub rows: Vec<SpanRow>,
    /// Receives the number of new spans, or the store error.
    pub reply: oneshot::Sender<Result<usize, StoreError>>,
}

/// Writer settings.
pub struct WriterConfig {
    /// Database file.
    pub db: PathBuf,
    /// Keep at most this many spans (oldest pruned), when set.
    pub max_spans: Option<u64>,
    /// Also print each stored span as one JSON line on stdout.
    pub stdout_json: bool,
}

/// Opens the store and starts the writer thread, which ends when every sender is dropped.
pub fn spawn(
    config: WriterConfig,
    stats: Arc<Stats>,
    capacity: usize,
) -> Result<(mpsc::Sender<Batch>, JoinHandle<()>), StoreError> {
    let mut store = Store::open(&config.db)?;
    let (tx, mut rx) = mpsc::channel::<Batch>(capacity);
    let handle = std::thread::Builder::new()
        .name("meshwake-store".into())
        .spawn(move || {
            while let Some(batch) = rx.blocking_recv() {
                let result = write(&mut store, &config, &batch.rows);
                match &result {
                    Ok(n) => {
                        stats.spans_stored.fetch_add(*n as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        inc(&stats.store_errors);
                        eprintln!("meshwake collect: store error: {e}");
                    }
                }
                // The handler may have gone (client hung up): nothing to tell then.
                let _ = batch.reply.send(result);
            }
        })
        .map_err(StoreError::Spawn)?;
    Ok((tx, handle))
}

fn write(store: &mut Store, config: &WriterConfig, rows: &[SpanRow]) -> Result<usize, StoreError> {
    let n = store.insert(rows)?;
    if let Some(max) = config.max_spans {
        store.prune(max)?;
    }
    if config.stdout_json {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        for row in rows {
            if let Ok(line) = serde_json::to_string(&row.record) {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    Ok(n)
}
