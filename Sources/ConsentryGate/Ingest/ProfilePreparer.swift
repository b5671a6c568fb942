import ConsentryCore
import ConsentryCrypto
import ConsentryPolicy
import Foundation

/// A would-be new subject, sealed in advance: random id, data key wrapped under the active KEK, packed profile.
struct FreshSubject {
    let id: SubjectID
    let kekVersion: UInt32
    let wrapped: [UInt8]
    let packed: [UInt8]
    let auditSecret: [UInt8]
}

/// A profile record after everything that needs no database: validation, normalization, blind indexes, sealing.
struct PreparedProfile {
    var line: Int
    /// Set when the record is rejected.
    var problem: FieldProblem?
    /// Undeclared fields of a record whose values were read (counted even when it is then rejected for identity).
    var dropped: [String] = []
    var values: [(spec: FieldSpec, value: String)] = []
    var observedAt: Int64 = 0
    var hashes: [IdentityKind: [UInt8]] = [:]
    var fresh: FreshSubject?
}

/// Prepares profile records on the preparing thread. It owns its nonce pool and scratch key: not shared.
final class ProfilePreparer: @unchecked Sendable {
    // @unchecked: used by exactly one thread (the producer) after construction.
    private let vault: Vault
    private let schema: FieldSchema
    private let source: DataSource
    private let now: Int64
    private let nonces = NonceSource()
    private var scratchKey: SecretBytes

    init(vault: Vault, schema: FieldSchema, source: DataSource, now: Int64) throws(CryptoError) {
        self.vault = vault
        self.schema = schema
        self.source = source
        self.now = now
        scratchKey = try SecretBytes(count: Sealing.keyLength)
    }

    func prepare(_ record: ProfileRecord) -> PreparedProfile {
        var prepared = PreparedProfile(line: record.line, observedAt: now)
        do {
            try read(record, into: &prepared)
        } catch {
            prepared.problem = error
            return prepared
        }
        prepared.fresh = seal(prepared.values, observedAt: prepared.observedAt)
        return prepared
    }

    private func read(_ record: ProfileRecord, into prepared: inout PreparedProfile) throws(FieldProblem) {
        if let problem = record.problem { throw problem }
        var identities: [IdentityKind: String] = [:]
        var dropped: [String] = []
        for (key, raw) in record.values {
            if key == Vault.recordTimeColumn {
                guard !Normalize.trimmed(raw).isEmpty else { continue }
                do { prepared.observedAt = try Normalize.timestampMillis(raw) } catch { throw FieldProblem(field: key, reason: error.message) }
                if prepared.observedAt > now + 86_400_000 {
                    throw FieldProblem(field: key, reason: "is more than a day in the future; check the source system's clock")
                }
                continue
            }
            guard let spec = schema[key] else {
                if let category = SpecialCategory.category(ofName: key) {
                    throw FieldProblem(
                        field: FieldProblem.name(ofKey: key),
                        reason:
                            "looks like special-category data (\(category)) and is not declared; declare it in policies/fields.yaml with `class: special` to import it"
                    )
                }
                dropped.append(key)
                continue
            }
            guard !Normalize.trimmed(raw).isEmpty else { continue }  // a missing value is never stored as if real
            let value: String
            do { value = try Normalize.value(raw, as: spec.type) } catch { throw FieldProblem(field: key, reason: error.message) }
            if let kind = spec.identityKind { identities[kind] = value }
            prepared.values.append((spec, value))
        }
        prepared.dropped = dropped
        guard identities[.email] != nil || identities[.customerID] != nil else {
            throw FieldProblem(
                field: nil, reason: "the record has neither a valid `email` nor a `customer_id`; add one so it can be matched to a subject")
        }
        for (kind, value) in identities { prepared.hashes[kind] = vault.keys.blindIndex.index(kind, value) }
    }

    private func seal(_ values: [(spec: FieldSpec, value: String)], observedAt: Int64) -> FreshSubject? {
        NewSubject.seal(values, observedAt: observedAt, source: source, keys: vault.keys, scratch: &scratchKey, nonces: nonces)
    }
}

/// Sealing a new subject: one place for the preparer and the writer's fallback.
enum NewSubject {
    /// Seals `values` as a new subject under a fresh random data key (in `scratch`, zeroed afterwards), wrapped by the
    /// active key-encryption key; nil when that key is not at hand.
    static func seal(
        _ values: [(spec: FieldSpec, value: String)], observedAt: Int64, source: DataSource, keys: VaultKeys, scratch: inout SecretBytes,
        nonces: NonceSource
    ) -> FreshSubject? {
        let kekVersion = keys.activeVersion
        guard let kek = keys.kek(kekVersion) else { return nil }
        scratch.withUnsafeMutableBytes { SecureRandom.fill($0) }
        defer { scratch.zero() }
        let subject = SecureRandom.subjectID()
        var packed = PackedFields()
        for (spec, value) in values {
            let sealed = Sealing.seal(
                value, key: scratch, associatedData: Sealing.fieldAssociatedData(subject: subject, field: spec.name, keyVersion: 1), nonces: nonces)
            packed.entries.append(.init(name: spec.name.rawValue, source: source, observedAt: observedAt, sealed: sealed))
        }
        let wrapped = Sealing.wrap(
            scratch, kek: kek.key, associatedData: Sealing.wrapAssociatedData(subject: subject, kekVersion: kekVersion), nonces: nonces)
        return FreshSubject(id: subject, kekVersion: kekVersion, wrapped: wrapped, packed: packed.encoded(), auditSecret: SecureRandom.bytes(32))
    }
}

/// A bounded, blocking, single-producer/single-consumer queue between the preparer and the writer.
final class BoundedQueue<Element>: @unchecked Sendable {
    // @unchecked: every member is read and written under `condition`.
    private let condition = NSCondition()
    private var items: [Element] = []
    private var head = 0
    private var closed = false
    private var cancelled = false
    private var finished = false
    private var producerWaits = false
    private var consumerWaits = false
    private let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    /// Adds an item, waiting while the queue is full. Returns false when the consumer has cancelled.
    func put(_ item: Element) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while items.count - head >= capacity && !cancelled {
            producerWaits = true
            condition.wait()
        }
        guard !cancelled else { return false }
        items.append(item)
        if consumerWaits {
            consumerWaits = false
            condition.broadcast()
        }
        return true
    }

    /// Marks the end of the input (called by the producer when it stops, for any reason).
    func close() {
        condition.lock()
        closed = true
        finished = true
        condition.broadcast()
        condition.unlock()
    }

    /// The next item, waiting while the queue is empty; nil once the producer closed it and it is drained.
    func take() -> Element? {
        condition.lock()
        defer { condition.unlock() }
        while head == items.count && !closed {
            consumerWaits = true
            condition.wait()
        }
        guard head < items.count else { return nil }
        let item = items[head]
        head += 1
        if head > 4_096 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        // A full queue wakes its producer only once half of it is drained: waking it for every free slot made the two
        // threads hand over one record at a time, a context switch per record.
        if producerWaits && items.count - head <= capacity / 2 {
            producerWaits = false
            condition.broadcast()
        }
        return item
    }

    /// Stops the producer and waits until it has closed the queue.
    func cancelAndDrain() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        while !finished { condition.wait() }
        items.removeAll()
        head = 0
        condition.unlock()
    }
}

/// Carries a value to another thread where the compiler cannot see that only one thread uses it at a time.
final class UncheckedBox<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}
