//! The span store: one SQLite file with one table of span rows.
//!
//! Why SQLite (through `rusqlite` with the `bundled` feature): it is embedded (no server to run
//! next to the collector), crash-safe in WAL mode (a request's spans are committed or not at all,
//! and readers such as `meshwake impact` never block the writer), one file that is easy to copy or
//! delete, queryable by hand with the `sqlite3` shell, and one of the best-kept libraries there is.
//! `bundled` compiles a known SQLite version in, so nothing depends on the host's library.

use std::fmt;
use std::path::Path;

use rusqlite::{params, Connection, OpenFlags};

use crate::analysis_bridge::{Kind, SpanRecord};
use crate::otlp::SpanRow;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS spans (
    id                  INTEGER PRIMARY KEY,
    trace_id            TEXT    NOT NULL,
    span_id             TEXT    NOT NULL,
    parent_span_id      TEXT,
    service             TEXT    NOT NULL,
    version             TEXT    NOT NULL,
    -- As the analysis serialises it: server, client, other.
    kind                TEXT    NOT NULL,
    role                TEXT,
    start_ns            INTEGER NOT NULL,
    end_ns              INTEGER NOT NULL,
    is_error            INTEGER NOT NULL,
    http_status         INTEGER,
    route               TEXT,
    peer_service        TEXT,
    peer_version        TEXT,
    name                TEXT    NOT NULL,
    attributes          TEXT    NOT NULL,
    resource_attributes TEXT    NOT NULL,
    -- Exporters retry on 503: the same span twice is stored once.
    UNIQUE (trace_id, span_id)
);
CREATE INDEX IF NOT EXISTS spans_by_start ON spans (start_ns);
";

/// A store operation that failed.
#[derive(Debug)]
pub enum StoreError {
    /// Opening the file or setting it up failed.
    Open(rusqlite::Error),
    /// Writing a batch failed (disk full, I/O error, locked database...).
    Write(rusqlite::Error),
    /// Reading spans back failed.
    Read(rusqlite::Error),
    /// The writer thread could not be started.
    Spawn(std::io::Error),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Open(e) => write!(f, "cannot open span store: {e}"),
            StoreError::Write(e) => write!(f, "cannot write spans: {e}"),
            StoreError::Read(e) => write!(f, "cannot read spans: {e}"),
            StoreError::Spawn(e) => write!(f, "cannot start the store writer: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// An open span store.
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) the store at `path` in WAL mode.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(StoreError::Open)?;
        // WAL: readers do not block the writer; NORMAL sync is durable across process crashes.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(StoreError::Open)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(StoreError::Open)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(StoreError::Open)?;
        conn.execute_batch(SCHEMA).map_err(StoreError::Open)?;
        Ok(Store { conn })
    }

    /// Opens an existing store read-only, to watch it while another process (the collector)
    /// writes it; fails when the file does not exist yet.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(StoreError::Open)?;
        Ok(Store { conn })
    }

    /// Inserts `rows` in one transaction; returns how many were new.
    pub fn insert(&mut self, rows: &[SpanRow]) -> Result<usize, StoreError> {
        let tx = self.conn.transaction().map_err(StoreError::Write)?;
        let mut inserted = 0;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO spans (trace_id, span_id, parent_span_id, service, version,
                     kind, role, start_ns, end_ns, is_error, http_status, route, peer_service,
                     peer_version, name, attributes, resource_attributes)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
                )
                .map_err(StoreError::Write)?;
            for row in rows {
                let r = &row.record;
                inserted += stmt
                    .execute(params![
                        r.trace_id,
                        r.span_id,
                        r.parent_span_id,
                        r.service,
                        r.version,
                        kind_text(r.kind),
                        r.role,
                        // SQLite integers are i64; nanosecond timestamps fit until 2262.
                        i64::try_from(r.start_ns).unwrap_or(i64::MAX),
                        i64::try_from(r.end_ns).unwrap_or(i64::MAX),
                        r.is_error,
                        r.http_status,
                        r.route,
                        r.peer_service,
                        r.peer_version,
                        row.name,
                        row.attributes.to_string(),
                        row.resource_attributes.to_string(),
                    ])
                    .map_err(StoreError::Write)?;
            }
        }
        tx.commit().map_err(StoreError::Write)?;
        Ok(inserted)
    }

    /// Deletes the oldest rows so that at most `max_spans` remain; returns how many were deleted.
    pub fn prune(&mut self, max_spans: u64) -> Result<usize, StoreError> {
        let keep = i64::try_from(max_spans).unwrap_or(i64::MAX);
        self.conn
            .execute(
                "DELETE FROM spans WHERE id <= (SELECT id FROM spans ORDER BY id DESC LIMIT 1 OFFSET ?1)",
                params![keep],
            )
            .map_err(StoreError::Write)
    }

    /// Caps the database size in pages, to simulate a full disk in tests.
    #[cfg(test)]
    pub fn limit_pages(&self, pages: u32) -> Result<(), StoreError> {
        self.conn
            .pragma_update(None, "max_page_count", pages)
            .map_err(StoreError::Write)
    }

    /// Number of stored spans.
    pub fn count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM spans", [], |r| r.get(0))
            .map_err(StoreError::Read)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Every stored span, oldest first.
    pub fn load_records(&self) -> Result<Vec<SpanRecord>, StoreError> {
        self.load_since(0)
    }

    /// The spans that started at or after `start_ns` (Unix ns), oldest first; the
    /// `spans_by_start` index makes this cheap for a recent window of a large store.
    pub fn load_since(&self, start_ns: u64) -> Result<Vec<SpanRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT trace_id, span_id, parent_span_id, service, version, kind, role, start_ns,
                 end_ns, is_error, http_status, route, peer_service, peer_version
                 FROM spans WHERE start_ns >= ?1 ORDER BY start_ns, id",
            )
            .map_err(StoreError::Read)?;
        let rows = stmt
            .query_map(params![i64::try_from(start_ns).unwrap_or(i64::MAX)], |r| {
                Ok(SpanRecord {
                    trace_id: r.get(0)?,
                    span_id: r.get(1)?,
                    parent_span_id: r.get(2)?,
                    service: r.get(3)?,
                    version: r.get(4)?,
                    kind: kind_from_text(&r.get::<_, String>(5)?),
                    role: r.get(6)?,
                    start_ns: u64::try_from(r.get::<_, i64>(7)?).unwrap_or(0),
                    end_ns: u64::try_from(r.get::<_, i64>(8)?).unwrap_or(0),
                    is_error: r.get(9)?,
                    http_status: r.get(10)?,
                    route: r.get(11)?,
                    peer_service: r.get(12)?,
                    peer_version: r.get(13)?,
                })
            })
            .map_err(StoreError::Read)?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::Read)
    }

    /// Start (Unix ns) of the newest stored span; `None` when the store is empty.
    pub fn newest_start_ns(&self) -> Result<Option<u64>, StoreError> {
        let newest: Option<i64> = self
            .conn
            .query_row("SELECT MAX(start_ns) FROM spans", [], |r| r.get(0))
            .map_err(StoreError::Read)?;
        Ok(newest.map(|n| u64::try_from(n).unwrap_or(0)))
    }
}

/// The serde name of a span kind (`server`...), so the column reads like the JSON report.
fn kind_text(kind: Kind) -> String {
    match serde_json::to_value(kind) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn kind_from_text(s: &str) -> Kind {
    serde_json::from_value(serde_json::Value::String(s.to_string())).unwrap_or(Kind::Other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(span_id: &str, start: u64) -> SpanRow {
        SpanRow {
            record: SpanRecord {
                trace_id: "t".into(),
                span_id: span_id.into(),
                parent_span_id: None,
                service: "svc".into(),
                version: "v1".into(),
                kind: Kind::Server,
                role: Some("inbound".into()),
                start_ns: start,
                end_ns: start + 1,
                is_error: false,
                http_status: Some(200),
                route: None,
                peer_service: None,
                peer_version: None,
            },
            name: "n".into(),
            attributes: json!({"a": 1}),
            resource_attributes: json!({}),
        }
    }

    #[test]
    fn insert_dedupes_loads_and_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        assert!(Store::open_read_only(&path).is_err(), "no file yet");
        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.insert(&[row("a", 3), row("b", 1)]).unwrap(), 2);
        assert_eq!(store.insert(&[row("a", 3), row("c", 2)]).unwrap(), 1);
        // What `meshwake demo` polls while the collector writes.
        assert_eq!(Store::open_read_only(&path).unwrap().count().unwrap(), 3);
        let loaded = store.load_records().unwrap();
        let ids: Vec<_> = loaded.iter().map(|r| r.span_id.as_str()).collect();
        assert_eq!(ids, ["b", "c", "a"]);
        assert_eq!(loaded[0], row("b", 1).record);
        assert_eq!(store.newest_start_ns().unwrap(), Some(3));
        let recent: Vec<_> = store
            .load_since(2)
            .unwrap()
            .into_iter()
            .map(|r| r.span_id)
            .collect();
        assert_eq!(recent, ["c", "a"]);
        assert_eq!(store.prune(2).unwrap(), 1);
        assert_eq!(store.count().unwrap(), 2);
        assert_eq!(store.prune(10).unwrap(), 0);
    }

    #[test]
    fn kinds_round_trip_as_text() {
        for kind in [Kind::Server, Kind::Client, Kind::Other] {
            assert_eq!(kind_from_text(&kind_text(kind)), kind);
        }
        assert_eq!(kind_text(Kind::Server), "server");
        assert_eq!(kind_from_text("bogus"), Kind::Other);
    }
}
