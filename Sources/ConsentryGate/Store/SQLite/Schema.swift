import GRDB

/// The vault's database schema, as named migrations. Persisted strings (kinds, states, sources) are frozen.
enum Schema {
    /// The identifier of the newest migration; `status` reports it as the schema version.
    static let currentVersion = "v10-tokens"

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-vault") { db in
            // Key-encryption keys, wrapped by a key derived from the master key. During a rotation two rows
            // exist: the new `active` one and the `retiring` one still wrapping some data keys.
            try db.execute(
                sql: """
                    CREATE TABLE kek (
                        version INTEGER PRIMARY KEY CHECK (version > 0),
                        wrapped BLOB NOT NULL,
                        state TEXT NOT NULL CHECK (state IN ('active', 'retiring')),
                        created_at INTEGER NOT NULL
                    );
                    CREATE UNIQUE INDEX kek_one_active ON kek(state) WHERE state = 'active';

                    -- One row per subject. `id` is random; `fields` packs each field sealed on its own
                    -- (see PackedFields), so a read opens only the fields it asks for.
                    CREATE TABLE subject (
                        id INTEGER PRIMARY KEY CHECK (id > 0),
                        kek_version INTEGER NOT NULL REFERENCES kek(version),
                        wrapped_key BLOB NOT NULL,
                        key_version INTEGER NOT NULL DEFAULT 1 CHECK (key_version > 0),
                        fields BLOB NOT NULL,
                        created_at INTEGER NOT NULL,
                        updated_at INTEGER NOT NULL
                    );
                    CREATE INDEX subject_kek ON subject(kek_version);

                    -- Blind indexes (keyed BLAKE2b) of normalized identifiers; the hash input includes the kind,
                    -- so one key space serves all kinds. An e-mail address or customer id belongs to one
                    -- subject (the primary key enforces it); a phone number may be shared (a household
                    -- line), so phone indexes live in their own table keyed by (hash, subject).
                    CREATE TABLE identity (
                        hash BLOB PRIMARY KEY CHECK (length(hash) = 32),
                        kind TEXT NOT NULL CHECK (kind IN ('email', 'customer_id')),
                        subject_id INTEGER NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
                        source TEXT NOT NULL,
                        created_at INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    CREATE INDEX identity_subject ON identity(subject_id);
                    CREATE TABLE shared_identity (
                        hash BLOB NOT NULL CHECK (length(hash) = 32),
                        subject_id INTEGER NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
                        kind TEXT NOT NULL CHECK (kind IN ('phone')),
                        source TEXT NOT NULL,
                        created_at INTEGER NOT NULL,
                        PRIMARY KEY (hash, subject_id)
                    ) WITHOUT ROWID;
                    CREATE INDEX shared_identity_subject ON shared_identity(subject_id);

                    -- Behavioral events: no direct identifiers, linked by the random subject id.
                    -- `key` is a keyed hash of the source's event id (idempotency); `digest` a keyed hash of
                    -- the content, to tell a harmless re-delivery from an id reused for another event.
                    CREATE TABLE event (
                        id INTEGER PRIMARY KEY,
                        key BLOB NOT NULL UNIQUE,
                        digest BLOB NOT NULL,
                        subject_id INTEGER NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
                        type TEXT NOT NULL CHECK (type IN ('view', 'cart_add', 'cart_remove', 'purchase', 'email_sent',
                            'email_open', 'email_click', 'unsubscribe')),
                        time INTEGER NOT NULL,
                        item_id TEXT,
                        category TEXT,
                        amount REAL,
                        currency TEXT,
                        campaign_id TEXT,
                        received_at INTEGER NOT NULL
                    );
                    CREATE INDEX event_subject_time ON event(subject_id, time);

                    -- The consent ledger: append-only; the current state is derived from it.
                    CREATE TABLE consent_record (
                        id INTEGER PRIMARY KEY,
                        subject_id INTEGER NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
                        purpose TEXT NOT NULL,
                        state TEXT NOT NULL CHECK (state IN ('granted', 'withdrawn', 'pending', 'confirmed')),
                        time INTEGER NOT NULL,
                        source TEXT NOT NULL,
                        notice_version TEXT,
                        evidence_ref TEXT,
                        expires_at INTEGER,
                        recorded_at INTEGER NOT NULL
                    );
                    CREATE INDEX consent_subject ON consent_record(subject_id, purpose, id);
                    CREATE TRIGGER consent_record_append_only BEFORE UPDATE ON consent_record
                    BEGIN SELECT RAISE(ABORT, 'consent records are append-only'); END;

                    -- Derived data (segment memberships, scores, clusters, recommendations) is personal data:
                    -- sealed with the subject's key like profile fields.
                    CREATE TABLE derived (
                        subject_id INTEGER NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
                        kind TEXT NOT NULL,
                        name TEXT NOT NULL,
                        sealed BLOB NOT NULL,
                        updated_at INTEGER NOT NULL,
                        PRIMARY KEY (subject_id, kind, name)
                    ) WITHOUT ROWID;

                    CREATE TABLE vault_meta (
                        key TEXT PRIMARY KEY,
                        value TEXT NOT NULL
                    ) WITHOUT ROWID;
                    """)
        }
        migrator.registerMigration("v2-gate") { db in
            try db.execute(
                sql: """
                    -- Each subject's audit-pseudonym secret: pseudonyms are keyed hashes of it, so erasing the
                    -- subject row makes its past audit entries unlinkable. Rows from before this migration get
                    -- SQLite's randomblob; new subjects get libsodium's random bytes.
                    ALTER TABLE subject ADD COLUMN audit_secret BLOB;
                    UPDATE subject SET audit_secret = randomblob(32) WHERE audit_secret IS NULL;
                    -- Covers pass 1 of a gated scan (id and pseudonym secret of every subject) without reading the
                    -- profile blobs.
                    CREATE INDEX subject_audit_secret ON subject(id, audit_secret);

                    -- Restriction (Art. 18), objection (Art. 21, per purpose), CCPA opt-out of sale/sharing and the
                    -- Global Privacy Control signal: append-only, the newest record per flag and purpose counts.
                    CREATE TABLE subject_flag (
                        id INTEGER PRIMARY KEY,
                        subject_id INTEGER NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
                        flag TEXT NOT NULL CHECK (flag IN ('restriction', 'objection', 'opt_out_sale_share', 'gpc')),
                        purpose TEXT NOT NULL DEFAULT '',
                        value INTEGER NOT NULL CHECK (value IN (0, 1)),
                        time INTEGER NOT NULL,
                        source TEXT NOT NULL,
                        recorded_at INTEGER NOT NULL
                    );
                    CREATE INDEX subject_flag_subject ON subject_flag(subject_id, flag, purpose, id);
                    CREATE TRIGGER subject_flag_append_only BEFORE UPDATE ON subject_flag
                    BEGIN SELECT RAISE(ABORT, 'flag records are append-only'); END;

                    -- The audit log: a hash chain (see audit/FORMAT.md). Rows are never updated or deleted by
                    -- Consentry; the triggers make an accidental change fail, and `audit verify` detects a
                    -- deliberate one made outside SQLite's rules.
                    CREATE TABLE audit_entry (
                        sequence INTEGER PRIMARY KEY CHECK (sequence > 0),
                        time INTEGER NOT NULL,
                        actor TEXT NOT NULL,
                        role TEXT,
                        action TEXT NOT NULL,
                        purpose TEXT,
                        subject TEXT,
                        subject_count INTEGER NOT NULL,
                        subject_set_digest TEXT,
                        fields TEXT NOT NULL,
                        counts TEXT NOT NULL,
                        decision TEXT NOT NULL CHECK (decision IN ('permit', 'deny')),
                        reasons TEXT NOT NULL,
                        policy_version TEXT NOT NULL,
                        consent_record_ids TEXT NOT NULL,
                        request_id TEXT,
                        previous_hash TEXT NOT NULL,
                        hash TEXT NOT NULL
                    );
                    CREATE INDEX audit_entry_subject ON audit_entry(subject) WHERE subject IS NOT NULL;
                    CREATE TRIGGER audit_entry_no_update BEFORE UPDATE ON audit_entry
                    BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
                    CREATE TRIGGER audit_entry_no_delete BEFORE DELETE ON audit_entry
                    BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;

                    -- The subject set of a bulk entry: 16-byte pseudonyms back to back, covered by the entry's
                    -- subject_set_digest. One row per entry keeps a scan of a million subjects to one insert.
                    CREATE TABLE audit_subject_set (
                        sequence INTEGER PRIMARY KEY REFERENCES audit_entry(sequence),
                        pseudonyms BLOB NOT NULL CHECK (length(pseudonyms) % 16 = 0)
                    );
                    CREATE TRIGGER audit_subject_set_no_update BEFORE UPDATE ON audit_subject_set
                    BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
                    """)
        }
        migrator.registerMigration("v3-lean-subject") { db in
            // Rotation pages through subjects by id, and `kek_version <> ?` cannot use this index anyway;
            // dropping it saves every import one random-keyed B-tree insert per subject.
            try db.execute(sql: "DROP INDEX IF EXISTS subject_kek")
        }
        migrator.registerMigration("v4-rights") { db in
            try db.execute(
                sql: """
                    -- The CPRA limit on sensitive personal information joins the flags; SQLite cannot change a CHECK
                    -- constraint in place, so the table is rebuilt with its rows, index and trigger.
                    CREATE TABLE subject_flag_v4 (
                        id INTEGER PRIMARY KEY,
                        subject_id INTEGER NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
                        flag TEXT NOT NULL CHECK (flag IN ('restriction', 'objection', 'opt_out_sale_share', 'gpc', 'limit_sensitive')),
                        purpose TEXT NOT NULL DEFAULT '',
                        value INTEGER NOT NULL CHECK (value IN (0, 1)),
                        time INTEGER NOT NULL,
                        source TEXT NOT NULL,
                        recorded_at INTEGER NOT NULL
                    );
                    INSERT INTO subject_flag_v4 SELECT id, subject_id, flag, purpose, value, time, source, recorded_at FROM subject_flag;
                    DROP TABLE subject_flag;
                    ALTER TABLE subject_flag_v4 RENAME TO subject_flag;
                    CREATE INDEX subject_flag_subject ON subject_flag(subject_id, flag, purpose, id);
                    CREATE TRIGGER subject_flag_append_only BEFORE UPDATE ON subject_flag
                    BEGIN SELECT RAISE(ABORT, 'flag records are append-only'); END;

                    -- Data-subject requests. `subject_id` has no foreign key on purpose: the record outlives an
                    -- erasure (kept 24 months), and the erasure sets it to NULL so no row references the subject.
                    -- The requester's identifiers and the request details are sealed under the requests key and
                    -- deleted when the identifier retention ends; reasons and outcomes stay in clear (no personal data).
                    CREATE TABLE dsr_request (
                        id TEXT PRIMARY KEY,
                        type TEXT NOT NULL,
                        regime TEXT NOT NULL,
                        status TEXT NOT NULL CHECK (status IN ('received', 'verifying', 'verified', 'in_progress', 'completed', 'rejected',
                            'extended')),
                        subject_id INTEGER,
                        identifiers BLOB,
                        details BLOB,
                        received_at INTEGER NOT NULL,
                        confirm_due_at INTEGER,
                        due_at INTEGER NOT NULL,
                        extended_due_at INTEGER,
                        extension_reason TEXT,
                        rejection_reason TEXT,
                        code_hash BLOB,
                        code_expires_at INTEGER,
                        code_attempts INTEGER NOT NULL DEFAULT 0,
                        verified_at INTEGER,
                        completed_at INTEGER,
                        outcome TEXT,
                        receipt TEXT,
                        export_file TEXT,
                        idempotency_key TEXT UNIQUE,
                        updated_at INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    CREATE INDEX dsr_request_status ON dsr_request(status, due_at);
                    CREATE INDEX dsr_request_subject ON dsr_request(subject_id) WHERE subject_id IS NOT NULL;

                    -- Erased identifiers, as keyed hashes under their own key (not the look-up key), so a later import
                    -- of the same e-mail or customer id is refused instead of recreating the subject.
                    CREATE TABLE suppression (
                        hash BLOB PRIMARY KEY CHECK (length(hash) = 32),
                        kind TEXT NOT NULL CHECK (kind IN ('email', 'customer_id', 'phone')),
                        created_at INTEGER NOT NULL
                    ) WITHOUT ROWID;

                    -- Records an erasure keeps for a legal obligation (rights.yaml `erasure.retain`), with no link to
                    -- the erased subject, the reason, and the day they may be deleted.
                    CREATE TABLE retained_record (
                        id INTEGER PRIMARY KEY,
                        kind TEXT NOT NULL,
                        reason TEXT NOT NULL,
                        retain_until INTEGER NOT NULL,
                        data TEXT NOT NULL,
                        created_at INTEGER NOT NULL
                    );
                    """)
        }
        migrator.registerMigration("v5-templates") { db in
            try db.execute(
                sql: """
                    -- Registered templates: the source, the purpose they are bound to, and the profile fields they read
                    -- (extracted when registered; a render asks the gate for exactly these). No personal data.
                    CREATE TABLE template (
                        name TEXT PRIMARY KEY,
                        purpose TEXT NOT NULL,
                        format TEXT NOT NULL CHECK (format IN ('html', 'text')),
                        source TEXT NOT NULL,
                        fields TEXT NOT NULL,
                        version INTEGER NOT NULL CHECK (version > 0),
                        registered_by TEXT NOT NULL,
                        registered_at INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    """)
        }
        migrator.registerMigration("v6-segments") { db in
            try db.execute(
                sql: """
                    -- Segment definitions: the rule (canonical text), the purpose it serves, the profile fields it reads, and
                    -- the role that defined it (incremental updates act in that role). Memberships are derived data.
                    CREATE TABLE segment (
                        name TEXT PRIMARY KEY,
                        purpose TEXT NOT NULL,
                        rule TEXT NOT NULL,
                        fields TEXT NOT NULL,
                        reads_events INTEGER NOT NULL CHECK (reads_events IN (0, 1)),
                        role TEXT NOT NULL,
                        version INTEGER NOT NULL CHECK (version > 0),
                        defined_by TEXT NOT NULL,
                        defined_at INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    """)
        }
        migrator.registerMigration("v7-models") { db in
            try db.execute(
                sql: """
                    -- Trained models with their metrics: parameters only (weights, centroids, scalers), no personal data.
                    CREATE TABLE model (
                        name TEXT NOT NULL,
                        version INTEGER NOT NULL CHECK (version > 0),
                        purpose TEXT NOT NULL,
                        metrics TEXT NOT NULL,
                        parameters TEXT NOT NULL,
                        trained_by TEXT NOT NULL,
                        trained_at INTEGER NOT NULL,
                        PRIMARY KEY (name, version)
                    ) WITHOUT ROWID;
                    """)
        }
        migrator.registerMigration("v8-triggers") { db in
            try db.execute(
                sql: """
                    -- Trigger definitions: a kind (cart_abandoned, viewed_not_purchased, browse_abandoned), the purpose its
                    -- messages serve, the delay before it fires, and the role that defined it.
                    CREATE TABLE trigger_def (
                        name TEXT PRIMARY KEY,
                        kind TEXT NOT NULL,
                        purpose TEXT NOT NULL,
                        delay_ms INTEGER NOT NULL CHECK (delay_ms > 0),
                        role TEXT NOT NULL,
                        defined_by TEXT NOT NULL,
                        defined_at INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    -- Fired triggers waiting for the campaign platform. `occurrence` is a keyed hash of the trigger, the
                    -- subject and the event that caused it, so an occurrence fires at most once. The item and category
                    -- are sealed with the subject's key; the row goes with the subject on erasure.
                    CREATE TABLE trigger_queue (
                        id INTEGER PRIMARY KEY,
                        trigger TEXT NOT NULL,
                        subject_id INTEGER NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
                        occurrence BLOB NOT NULL UNIQUE,
                        payload BLOB NOT NULL,
                        occurred_at INTEGER NOT NULL,
                        fired_at INTEGER NOT NULL,
                        acknowledged_at INTEGER
                    );
                    CREATE INDEX trigger_queue_pending ON trigger_queue(trigger, id) WHERE acknowledged_at IS NULL;
                    CREATE INDEX trigger_queue_subject ON trigger_queue(subject_id);
                    """)
        }
        migrator.registerMigration("v9-experiments") { db in
            try db.execute(
                sql: """
                    -- Experiments: arms with weights and a holdout share, for one purpose.
                    CREATE TABLE experiment (
                        name TEXT PRIMARY KEY,
                        purpose TEXT NOT NULL,
                        arms TEXT NOT NULL,
                        holdout REAL NOT NULL CHECK (holdout >= 0 AND holdout < 1),
                        role TEXT NOT NULL,
                        created_by TEXT NOT NULL,
                        created_at INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    -- Which arm each subject is in, and what happened: linked by the random subject id, removed with the
                    -- subject on erasure, part of the subject's export.
                    CREATE TABLE experiment_assignment (
                        experiment TEXT NOT NULL REFERENCES experiment(name) ON DELETE CASCADE,
                        subject_id INTEGER NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
                        arm TEXT NOT NULL,
                        assigned_at INTEGER NOT NULL,
                        PRIMARY KEY (experiment, subject_id)
                    ) WITHOUT ROWID;
                    CREATE INDEX experiment_assignment_subject ON experiment_assignment(subject_id);
                    CREATE TABLE experiment_outcome (
                        id INTEGER PRIMARY KEY,
                        key BLOB NOT NULL UNIQUE,
                        experiment TEXT NOT NULL REFERENCES experiment(name) ON DELETE CASCADE,
                        subject_id INTEGER NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
                        kind TEXT NOT NULL CHECK (kind IN ('send', 'open', 'click', 'conversion', 'revenue')),
                        value REAL NOT NULL,
                        time INTEGER NOT NULL
                    );
                    CREATE INDEX experiment_outcome_subject ON experiment_outcome(subject_id);
                    CREATE INDEX experiment_outcome_experiment ON experiment_outcome(experiment, kind);
                    """)
        }
        migrator.registerMigration("v10-tokens") { db in
            try db.execute(
                sql: """
                    -- API tokens: the public id, a keyed hash of the secret (the token itself is shown once), the role.
                    CREATE TABLE api_token (
                        id TEXT PRIMARY KEY,
                        name TEXT NOT NULL,
                        role TEXT NOT NULL,
                        secret_hash BLOB NOT NULL CHECK (length(secret_hash) = 32),
                        created_at INTEGER NOT NULL,
                        expires_at INTEGER,
                        revoked_at INTEGER,
                        last_used_at INTEGER
                    ) WITHOUT ROWID;
                    """)
        }
        migrator.registerMigration("v11-audit-append-only") { db in
            // Every gated read appends one entry; an index on the entry's random pseudonym dirtied a random
            // index page per read, which made the shared commit of the API's renders about a fifth slower.
            // Looking entries up by subject (a data-subject request's processing log, `audit query --subject`)
            // is rare and scans the log instead, as the bulk entries' subject sets are scanned already.
            try db.execute(sql: "DROP INDEX IF EXISTS audit_entry_subject")
        }
        migrator.registerMigration("v12-idempotency") { db in
            try db.execute(
                sql: """
                    -- Responses to API imports sent with an Idempotency-Key, kept 24 hours so that a retry returns the
                    -- first response instead of importing again. Keys and bodies are stored as keyed hashes only.
                    CREATE TABLE idempotency_key (
                        key_hash BLOB PRIMARY KEY CHECK (length(key_hash) = 32),
                        request_hash BLOB NOT NULL CHECK (length(request_hash) = 32),
                        status INTEGER NOT NULL,
                        response BLOB NOT NULL,
                        created_at INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    CREATE INDEX idempotency_key_created ON idempotency_key(created_at);
                    """)
        }
        migrator.registerMigration("v13-record-bindings") { db in
            try db.execute(
                sql: """
                    -- A keyed MAC per row (RecordBinding): the identity index is bound to the subject each row names, consent
                    -- and flag records to their id, subject and content. Rows written before v13 are bound once at open;
                    -- the ledgers' append-only triggers allow exactly that one change: a missing binding filled in.
                    ALTER TABLE identity ADD COLUMN binding BLOB;
                    ALTER TABLE shared_identity ADD COLUMN binding BLOB;
                    ALTER TABLE consent_record ADD COLUMN binding BLOB;
                    ALTER TABLE subject_flag ADD COLUMN binding BLOB;
                    ALTER TABLE api_token ADD COLUMN binding BLOB;
                    DROP TRIGGER consent_record_append_only;
                    CREATE TRIGGER consent_record_append_only BEFORE UPDATE ON consent_record
                    WHEN NOT (OLD.binding IS NULL AND NEW.binding IS NOT NULL AND NEW.id IS OLD.id AND NEW.subject_id IS OLD.subject_id
                        AND NEW.purpose IS OLD.purpose AND NEW.state IS OLD.state AND NEW.time IS OLD.time AND NEW.source IS OLD.source
                        AND NEW.notice_version IS OLD.notice_version AND NEW.evidence_ref IS OLD.evidence_ref
                        AND NEW.expires_at IS OLD.expires_at AND NEW.recorded_at IS OLD.recorded_at)
                    BEGIN SELECT RAISE(ABORT, 'consent records are append-only'); END;
                    DROP TRIGGER subject_flag_append_only;
                    CREATE TRIGGER subject_flag_append_only BEFORE UPDATE ON subject_flag
                    WHEN NOT (OLD.binding IS NULL AND NEW.binding IS NOT NULL AND NEW.id IS OLD.id AND NEW.subject_id IS OLD.subject_id
                        AND NEW.flag IS OLD.flag AND NEW.purpose IS OLD.purpose AND NEW.value IS OLD.value AND NEW.time IS OLD.time
                        AND NEW.source IS OLD.source AND NEW.recorded_at IS OLD.recorded_at)
                    BEGIN SELECT RAISE(ABORT, 'flag records are append-only'); END;
                    """)
        }
        migrator.registerMigration("v14-ledger-heads") { db in
            // Per subject, the count and newest id of its consent and flag records, bound to it (RecordBinding.LedgerHead):
            // a record deleted from the file shows against it. Filled at the first open after the upgrade.
            try db.execute(sql: "ALTER TABLE subject ADD COLUMN ledger_head BLOB")
        }
        migrator.registerMigration("v15-catalog") { db in
            try db.execute(
                sql: """
                    -- One versioned catalog for the features' non-personal definitions (templates, segments, model
                    -- versions, triggers, experiments), keyed by kind, name and version: defining a name again adds a
                    -- version, and the newest is in force. `body` holds the feature's own fields as a JSON object.
                    CREATE TABLE catalog (
                        kind TEXT NOT NULL,
                        name TEXT NOT NULL,
                        version INTEGER NOT NULL CHECK (version > 0),
                        purpose TEXT NOT NULL,
                        role TEXT,
                        body TEXT NOT NULL CHECK (json_valid(body)),
                        defined_by TEXT NOT NULL,
                        defined_at INTEGER NOT NULL,
                        PRIMARY KEY (kind, name, version)
                    ) WITHOUT ROWID;
                    INSERT INTO catalog (kind, name, version, purpose, role, body, defined_by, defined_at)
                        SELECT 'template', name, version, purpose, NULL,
                            json_object('fields', json(fields), 'format', format, 'source', source), registered_by, registered_at
                        FROM template;
                    INSERT INTO catalog (kind, name, version, purpose, role, body, defined_by, defined_at)
                        SELECT 'segment', name, version, purpose, role,
                            json_object('fields', json(fields), 'readsEvents', json(CASE reads_events WHEN 1 THEN 'true' ELSE 'false' END),
                                'rule', rule),
                            defined_by, defined_at
                        FROM segment;
                    INSERT INTO catalog (kind, name, version, purpose, role, body, defined_by, defined_at)
                        SELECT 'model', name, version, purpose, NULL, json_object('metrics', metrics, 'parameters', parameters), trained_by,
                            trained_at
                        FROM model;
                    INSERT INTO catalog (kind, name, version, purpose, role, body, defined_by, defined_at)
                        SELECT 'trigger', name, 1, purpose, role, json_object('delayMillis', delay_ms, 'firesSince', defined_at, 'kind', kind), defined_by, defined_at
                        FROM trigger_def;
                    INSERT INTO catalog (kind, name, version, purpose, role, body, defined_by, defined_at)
                        SELECT 'experiment', name, 1, purpose, role, json_object('arms', json(arms), 'holdout', holdout), created_by, created_at
                        FROM experiment;

                    -- Assignments and outcomes named their experiment by a foreign key into `experiment`; the catalog
                    -- keeps every version, so they name it by its name alone (experiments are never removed).
                    CREATE TABLE experiment_assignment_v15 (
                        experiment TEXT NOT NULL,
                        subject_id INTEGER NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
                        arm TEXT NOT NULL,
                        assigned_at INTEGER NOT NULL,
                        PRIMARY KEY (experiment, subject_id)
                    ) WITHOUT ROWID;
                    INSERT INTO experiment_assignment_v15 SELECT experiment, subject_id, arm, assigned_at FROM experiment_assignment;
                    DROP TABLE experiment_assignment;
                    ALTER TABLE experiment_assignment_v15 RENAME TO experiment_assignment;
                    CREATE INDEX experiment_assignment_subject ON experiment_assignment(subject_id);
                    CREATE TABLE experiment_outcome_v15 (
                        id INTEGER PRIMARY KEY,
                        key BLOB NOT NULL UNIQUE,
                        experiment TEXT NOT NULL,
                        subject_id INTEGER NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
                        kind TEXT NOT NULL CHECK (kind IN ('send', 'open', 'click', 'conversion', 'revenue')),
                        value REAL NOT NULL,
                        time INTEGER NOT NULL
                    );
                    INSERT INTO experiment_outcome_v15 SELECT id, key, experiment, subject_id, kind, value, time FROM experiment_outcome;
                    DROP TABLE experiment_outcome;
                    ALTER TABLE experiment_outcome_v15 RENAME TO experiment_outcome;
                    CREATE INDEX experiment_outcome_subject ON experiment_outcome(subject_id);
                    CREATE INDEX experiment_outcome_experiment ON experiment_outcome(experiment, kind);

                    DROP TABLE template;
                    DROP TABLE segment;
                    DROP TABLE model;
                    DROP TABLE trigger_def;
                    DROP TABLE experiment;
                    """)
        }
        migrator.registerMigration("v16-derived-purposes") { db in
            try db.execute(
                sql: """
                    -- Each derived value carries the purpose it was computed for, and a gated read releases the values of
                    -- its own purpose only (the kinds released with reads: segment memberships by their segment's
                    -- purpose, recommendations and send times for personalization). Values of other kinds keep no
                    -- purpose until they are written again; they are never released with reads.
                    ALTER TABLE derived ADD COLUMN purpose TEXT;
                    UPDATE derived SET purpose = (
                        SELECT c.purpose FROM catalog c WHERE c.kind = 'segment' AND c.name = derived.name ORDER BY c.version DESC LIMIT 1
                    ) WHERE kind = 'segment';
                    UPDATE derived SET purpose = 'personalization' WHERE kind = 'recommendation';
                    """)
            // Experiment arms become sealed derived values. Sealing needs the subjects' keys, so a vault with
            // assignments keeps `experiment_assignment` until its first open moves the rows and drops it
            // (Vault.sealExperimentArms); without any, it goes now.
            if try Int.fetchOne(db, sql: "SELECT count(*) FROM experiment_assignment") == 0 {
                try db.execute(sql: "DROP TABLE experiment_assignment")
            }
        }
        return migrator
    }
}
