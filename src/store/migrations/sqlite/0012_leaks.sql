-- Exposures read from leak reports, each once by its id (a report ingested twice adds nothing).
-- Never a secret: the leak is kept as ids, locations, times and one-way indicators.
CREATE TABLE leaks (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    format      TEXT NOT NULL,
    detector    TEXT NOT NULL,
    exposed_at  TEXT,
    -- The leak as JSON (`crate::leaks::Leak`).
    data        TEXT NOT NULL,
    -- JSON list of the ledger credentials it matched (`store::LeakMatch`).
    matched     TEXT NOT NULL,
    ingested_at TEXT NOT NULL,
    -- When its findings, distrust and containment were done; NULL until then, so an ingest that
    -- stopped part-way is answered by the next ingest of the report.
    answered_at TEXT
);
