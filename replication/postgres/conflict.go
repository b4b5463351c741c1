package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Conflict is the incoming change a disabled subscription's apply worker fails on:
// a row whose key already exists at the subscriber. PostgreSQL 15 writes the error
// only to the subscriber's server log, so sitectl finds it another way: it peeks
// (without consuming) the publisher's slot from where the subscriber stopped,
// decodes the pgoutput messages, and looks each inserted key up at the subscriber.
type Conflict struct {
	Subscription string `json:"subscription"`
	Site         string `json:"site"` // the subscriber
	From         string `json:"from"` // the publisher
	// FinishLSN is the remote transaction's finish LSN: what
	// ALTER SUBSCRIPTION ... SKIP (lsn = ...) takes.
	FinishLSN string `json:"finish_lsn"`
	XID       uint32 `json:"xid"`
	Table     string `json:"table"`
	// Key is the conflicting row's replica identity, column → value.
	Key     map[string]string `json:"key"`
	Changes int               `json:"changes"` // changes in the remote transaction
}

// Summary says what conflicts, in one line.
func (c *Conflict) Summary() string {
	return fmt.Sprintf("%s row %s from %s already exists at %s (remote transaction %d, finish LSN %s)",
		c.Table, c.keyText(), c.From, c.Site, c.XID, c.FinishLSN)
}

// Resolution says how to resolve it.
func (c *Conflict) Resolution() string {
	var where []string
	for _, k := range slices.Sorted(maps.Keys(c.Key)) {
		where = append(where, fmt.Sprintf("%s = %s", k, quoteLiteral(c.Key[k])))
	}
	return fmt.Sprintf("a row has one owner and only its owner writes it. If the copy at %s is the stray one, delete it there "+
		"(DELETE FROM %s WHERE %s) and re-enable (sitectl deploy, or ALTER SUBSCRIPTION %s ENABLE); "+
		"to drop the incoming transaction instead (its %d changes are lost at %s): "+
		"ALTER SUBSCRIPTION %s SKIP (lsn = '%s'); ALTER SUBSCRIPTION %s ENABLE",
		c.Site, c.Table, strings.Join(where, " AND "), c.Subscription, c.Changes, c.Site, c.Subscription, c.FinishLSN, c.Subscription)
}

func (c *Conflict) keyText() string {
	keys := slices.Sorted(maps.Keys(c.Key))
	vals := make([]string, len(keys))
	for i, k := range keys {
		vals[i] = c.Key[k]
	}
	return fmt.Sprintf("(%s) = (%s)", strings.Join(keys, ", "), strings.Join(vals, ", "))
}

// Pending is what a subscription's slot holds that the subscriber has not applied.
type Pending struct {
	Transactions int    `json:"transactions"`
	Changes      int    `json:"changes"`
	FirstLSN     string `json:"first_finish_lsn,omitempty"`
	// OldestCommit is when the oldest waiting transaction committed at the publisher.
	OldestCommit time.Time `json:"oldest_commit,omitzero"`
	Conflict     *Conflict `json:"conflict,omitempty"`
}

// peekLimit bounds how many changes a conflict search decodes.
const peekLimit = 5000

// FindConflict peeks the publisher's slot of the subscription (which must be
// inactive: the subscription is disabled) and returns what is pending, with the
// first change that collides with a row at the subscriber. pub reaches the
// publisher, sub the subscriber. It changes nothing on either side.
func FindConflict(ctx context.Context, pub, sub Querier, s *Subscription, subOID uint32) (*Pending, error) {
	var active bool
	err := pub.QueryRow(ctx, `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, s.Name).Scan(&active)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%s has no slot %s", s.Flow.From, s.Name)
	}
	if err != nil {
		return nil, err
	}
	if active {
		return nil, nil // a walsender streams from it: nothing to peek while it does
	}
	// Where the subscriber really is: its replication origin's progress, which runs
	// ahead of the slot's confirmed position.
	var applied string
	err = sub.QueryRow(ctx, `SELECT coalesce(remote_lsn, '0/0')::text FROM pg_replication_origin_status WHERE external_id = 'pg_' || $1::text`, fmt.Sprint(subOID)).Scan(&applied)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("read %s's replication origin: %w", s.Site, err)
	}
	appliedLSN, _ := parseLSN(applied)
	rows, err := pub.Query(ctx, `SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2,
		'proto_version', '1', 'publication_names', $3)`, s.Name, peekLimit, s.Publication)
	if err != nil {
		return nil, fmt.Errorf("peek slot %s on %s: %w", s.Name, s.Flow.From, err)
	}
	var msgs [][]byte
	var data []byte
	if _, err := pgx.ForEachRow(rows, []any{&data}, func() error { msgs = append(msgs, append([]byte(nil), data...)); return nil }); err != nil {
		return nil, fmt.Errorf("peek slot %s on %s: %w", s.Name, s.Flow.From, err)
	}
	txns, err := decodePgoutput(msgs)
	if err != nil {
		return nil, fmt.Errorf("decode slot %s on %s: %w", s.Name, s.Flow.From, err)
	}
	p := &Pending{}
	for _, tx := range txns {
		if tx.finalLSN < appliedLSN {
			continue
		}
		p.Transactions++
		p.Changes += len(tx.changes)
		if p.FirstLSN == "" {
			p.FirstLSN = formatLSN(tx.finalLSN)
			p.OldestCommit = tx.commitTime
		}
		if p.Conflict != nil {
			continue
		}
		for _, ch := range tx.changes {
			if ch.kind != 'I' && ch.kind != 'U' {
				continue
			}
			exists, err := keyExists(ctx, sub, ch)
			if err != nil {
				return nil, fmt.Errorf("look up %s at %s: %w", ch.rel.name(), s.Site, err)
			}
			if exists {
				p.Conflict = &Conflict{Subscription: s.Name, Site: s.Site, From: s.Flow.From, FinishLSN: formatLSN(tx.finalLSN),
					XID: tx.xid, Table: ch.rel.name(), Key: ch.key(), Changes: len(tx.changes)}
				break
			}
		}
	}
	return p, nil
}

// keyExists looks the change's new key up at the subscriber. For an UPDATE only a
// key change can collide.
func keyExists(ctx context.Context, q Querier, ch change) (bool, error) {
	key := ch.key()
	if len(key) == 0 {
		return false, nil
	}
	if ch.kind == 'U' && ch.oldKey != nil && fmt.Sprint(ch.oldKey) == fmt.Sprint(key) {
		return false, nil
	}
	if ch.kind == 'U' && ch.oldKey == nil {
		return false, nil // key unchanged
	}
	cols := slices.Sorted(maps.Keys(key))
	conds := make([]string, len(cols))
	args := make([]any, len(cols))
	for i, c := range cols {
		conds[i] = fmt.Sprintf("%s::text = $%d", quoteIdent(c), i+1)
		args[i] = key[c]
	}
	var exists bool
	err := q.QueryRow(ctx, fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM %s WHERE %s)", quoteTable(ch.rel.name()), strings.Join(conds, " AND ")), args...).Scan(&exists)
	return exists, err
}

type relation struct {
	schema, table string
	cols          []string
	keyCol        []bool
}

func (r *relation) name() string { return r.schema + "." + r.table }

type change struct {
	kind   byte // I, U, D
	rel    *relation
	new    []*string
	oldKey map[string]string
}

// key is the new tuple's replica identity columns.
func (c change) key() map[string]string {
	out := map[string]string{}
	for i, isKey := range c.rel.keyCol {
		if isKey && i < len(c.new) && c.new[i] != nil {
			out[c.rel.cols[i]] = *c.new[i]
		}
	}
	return out
}

type txn struct {
	finalLSN   uint64
	commitTime time.Time
	xid        uint32
	changes    []change
}

// decodePgoutput decodes pgoutput protocol version 1 messages (one per row of
// pg_logical_slot_peek_binary_changes) into transactions.
func decodePgoutput(msgs [][]byte) ([]txn, error) {
	rels := map[uint32]*relation{}
	var out []txn
	var cur *txn
	for _, m := range msgs {
		if len(m) == 0 {
			continue
		}
		r := &reader{b: m[1:]}
		switch m[0] {
		case 'B':
			lsn := r.u64()
			ts := pgEpoch.Add(time.Duration(int64(r.u64())) * time.Microsecond)
			out = append(out, txn{finalLSN: lsn, commitTime: ts, xid: r.u32()})
			cur = &out[len(out)-1]
		case 'C':
			cur = nil
		case 'R':
			id := r.u32()
			rel := &relation{schema: r.str(), table: r.str()}
			r.u8()
			n := int(r.u16())
			for i := 0; i < n && r.err == nil; i++ {
				flags := r.u8()
				rel.cols = append(rel.cols, r.str())
				rel.keyCol = append(rel.keyCol, flags&1 == 1)
				r.u32()
				r.u32()
			}
			rels[id] = rel
		case 'I', 'U', 'D':
			rel := rels[r.u32()]
			if rel == nil || cur == nil {
				return nil, fmt.Errorf("change before its relation or transaction")
			}
			ch := change{kind: m[0], rel: rel}
			for r.err == nil && len(r.b) > 0 {
				switch tag := r.u8(); tag {
				case 'K', 'O':
					old := r.tuple()
					ch.oldKey = change{rel: rel, new: old}.key()
				case 'N':
					ch.new = r.tuple()
				default:
					return nil, fmt.Errorf("unknown tuple tag %q", tag)
				}
			}
			if m[0] == 'D' {
				ch.new = nil
			}
			cur.changes = append(cur.changes, ch)
		}
		if r.err != nil {
			return nil, fmt.Errorf("message %q: %w", m[0], r.err)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].finalLSN < out[j].finalLSN })
	return out, nil
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) need(n int) bool {
	if r.err == nil && len(r.b) < n {
		r.err = errors.New("message too short")
	}
	return r.err == nil
}

// take returns the next n bytes (zeros once the message is short: r.err says so).
func (r *reader) take(n int) []byte {
	if !r.need(n) {
		return make([]byte, n)
	}
	b := r.b[:n]
	r.b = r.b[n:]
	return b
}

func (r *reader) u8() byte    { return r.take(1)[0] }
func (r *reader) u16() uint16 { return binary.BigEndian.Uint16(r.take(2)) }
func (r *reader) u32() uint32 { return binary.BigEndian.Uint32(r.take(4)) }
func (r *reader) u64() uint64 { return binary.BigEndian.Uint64(r.take(8)) }

func (r *reader) str() string {
	i := strings.IndexByte(string(r.b), 0)
	if i < 0 {
		r.err = errors.New("unterminated string")
		return ""
	}
	s := string(r.b[:i])
	r.b = r.b[i+1:]
	return s
}

func (r *reader) tuple() []*string {
	n := int(r.u16())
	out := make([]*string, n)
	for i := 0; i < n && r.err == nil; i++ {
		switch kind := r.u8(); kind {
		case 'n', 'u':
		case 't', 'b':
			l := int(r.u32())
			if !r.need(l) {
				return nil
			}
			v := string(r.take(l))
			out[i] = &v
		default:
			r.err = fmt.Errorf("unknown column kind %q", kind)
		}
	}
	return out
}

// pgEpoch is where PostgreSQL timestamps count from.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// parseLSN reads "16/B374D848".
func parseLSN(s string) (uint64, error) {
	var hi, lo uint32
	if _, err := fmt.Sscanf(s, "%X/%X", &hi, &lo); err != nil {
		return 0, fmt.Errorf("LSN %q: %w", s, err)
	}
	return uint64(hi)<<32 | uint64(lo), nil
}

func formatLSN(v uint64) string { return fmt.Sprintf("%X/%X", uint32(v>>32), uint32(v)) }
