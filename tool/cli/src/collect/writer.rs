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
    let store = Store::open(&config.db)?;
    spawn_with(store, config, stats, capacity)
}

fn spawn_with(
    mut store: Store,
    config: WriterConfig,
    stats: Arc<Stats>,
    capacity: usize,
) -> Result<(mpsc::Sender<Batch>, JoinHandle<()>), StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis_bridge::{Kind, SpanRecord};
    use serde_json::json;

    fn row(i: usize) -> SpanRow {
        SpanRow {
            record: SpanRecord {
                trace_id: format!("{i:032x}"),
                span_id: format!("{i:016x}"),
                parent_span_id: None,
                service: "svc".into(),
                version: "v1".into(),
                kind: Kind::Server,
                role: None,
                start_ns: 1,
                end_ns: 2,
                is_error: false,
                http_status: None,
                route: None,
                peer_service: None,
                peer_version: None,
            },
            name: "x".repeat(4096),
            attributes: json!({}),
            resource_attributes: json!({}),
        }
    }

    #[test]
    fn disk_full_is_reported_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let store = Store::open(&db).unwrap();
        // A tiny page budget makes SQLite answer SQLITE_FULL, as a full disk would.
        store.limit_pages(8).unwrap();
        let stats = Arc::new(Stats::default());
        let config = WriterConfig {
            db,
            max_spans: None,
            stdout_json: false,
        };
        let (tx, handle) = spawn_with(store, config, stats.clone(), 1).unwrap();
        let (reply, outcome) = oneshot::channel();
        tx.blocking_send(Batch {
            rows: (0..64).map(row).collect(),
            reply,
        })
        .unwrap();
        assert!(matches!(
            outcome.blocking_recv().unwrap(),
            Err(StoreError::Write(_))
        ));
        let (reply, outcome) = oneshot::channel();
        tx.blocking_send(Batch {
            rows: vec![row(1000)],
            reply,
        })
        .unwrap();
        assert_eq!(outcome.blocking_recv().unwrap().unwrap(), 1);
        drop(tx);
        handle.join().unwrap();
        assert_eq!(stats.store_errors.load(Ordering::Relaxed), 1);
        assert_eq!(stats.spans_stored.load(Ordering::Relaxed), 1);
    }
}
