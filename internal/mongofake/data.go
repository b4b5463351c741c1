package mongofake

import (
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// writeConcern is the effective write concern of a write command.
func (c *Cluster) writeConcern(cmd bson.D, cfg *rsConfig) (majority bool, wtimeout time.Duration) {
	wc, _ := lookup(cmd, "writeConcern").(bson.D)
	if wc == nil || lookup(wc, "w") == nil {
		wc = c.defaultWC
		if wc == nil {
			wc = implicitWC(cfg)
		}
	}
	if ms, ok := asInt(lookup(wc, "wtimeout")); ok && ms > 0 {
		wtimeout = time.Duration(ms) * time.Millisecond
	}
	w := lookup(wc, "w")
	if s, isStr := w.(string); isStr {
		return s == "majority", wtimeout
	}
	n, _ := asInt(w)
	return n > 1, wtimeout
}

// maxWait bounds a majority write with no wtimeout (mongod would wait forever).
const maxWait = 30 * time.Second

func (c *Cluster) insert(n *node, req *request) (bson.D, error) {
	coll, _ := req.cmd[0].Value.(string)
	docs, _ := lookup(req.cmd, "documents").(bson.A)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !n.primary {
		return nil, errf(codeNotWritablePrimary, "not primary")
	}
	ns := req.db + "." + coll

	var last bson.Timestamp
	inserted := int32(0)
	var writeErrors bson.A
	for i, raw := range docs {
		d, _ := raw.(bson.D)
		id := lookup(d, "_id")
		if id == nil {
			id = bson.NewObjectID()
			d = append(bson.D{{Key: "_id", Value: id}}, d...)
		}
		if n.hasID(ns, idKey(id)) {
			writeErrors = append(writeErrors, bson.D{{Key: "index", Value: int32(i)}, {Key: "code", Value: int32(codeDuplicateKey)}, {Key: "errmsg", Value: fmt.Sprintf("E11000 duplicate key error collection: %s index: _id_ dup key: { _id: %v }", ns, id)}})
			break
		}
		last = c.nextTS()
		n.oplog = append(n.oplog, oplogEntry{TS: last, T: c.term, Op: "i", NS: ns, O: d, Wall: c.now(), idKey: idKey(id)})
		inserted++
	}
	c.recompute()
	reply := bson.D{{Key: "n", Value: inserted}}
	if writeErrors != nil {
		reply = append(reply, bson.E{Key: "writeErrors", Value: writeErrors})
	}
	majority, wtimeout := c.writeConcern(req.cmd, n.cfg)
	if inserted > 0 && majority {
		if wtimeout == 0 {
			wtimeout = maxWait
		}
		deadline := time.Now().Add(wtimeout)
		timer := time.AfterFunc(wtimeout, func() { c.mu.Lock(); c.changed.Broadcast(); c.mu.Unlock() })
		defer timer.Stop()
		for c.acks(n, last) < n.cfg.writeMajority() && !c.closed {
			if !n.primary {
				return nil, errf(codeNotWritablePrimary, "operation was interrupted because the node stepped down while waiting for write concern")
			}
			if !time.Now().Before(deadline) {
				reply = append(reply, bson.E{Key: "writeConcernError", Value: bson.D{{Key: "code", Value: int32(codeWriteConcernFailed)}, {Key: "codeName", Value: "WriteConcernFailed"}, {Key: "errmsg", Value: "waiting for replication timed out"}, {Key: "errInfo", Value: bson.D{{Key: "wtimeout", Value: true}}}}})
				break
			}
			c.changed.Wait()
		}
	}
	return append(reply, ok()...), nil
}

// docs replays n's oplog into the documents of ns.
func (c *Cluster) docs(n *node, ns string) []bson.D {
	var out []bson.D
	for _, e := range n.oplog {
		if e.Op == "i" && e.NS == ns {
			out = append(out, e.O)
		}
	}
	return out
}

// idKey is an _id's type and bytes, for duplicate checks.
func idKey(id any) string {
	t, b, err := bson.MarshalValue(id)
	if err != nil {
		return fmt.Sprint(id)
	}
	return string(rune(t)) + string(b)
}

func equal(a, b any) bool {
	ta, ba, err1 := bson.MarshalValue(a)
	tb, bb, err2 := bson.MarshalValue(b)
	return err1 == nil && err2 == nil && ta == tb && string(ba) == string(bb)
}

func matches(d, filter bson.D) (bool, error) {
	for _, f := range filter {
		if strings.HasPrefix(f.Key, "$") {
			return false, errf(codeBadValue, "mongofake supports equality filters only, not %s", f.Key)
		}
		if sub, isDoc := f.Value.(bson.D); isDoc && len(sub) > 0 && strings.HasPrefix(sub[0].Key, "$") {
			return false, errf(codeBadValue, "mongofake supports equality filters only, not %s", sub[0].Key)
		}
		if !equal(lookup(d, f.Key), f.Value) {
			return false, nil
		}
	}
	return true, nil
}

// readable returns the documents of ns at n, or an error when n may not serve reads.
func (c *Cluster) readable(n *node, req *request, ns string) ([]bson.D, error) {
	if n.cfg != nil && !n.primary && !req.secondary {
		return nil, errf(codeNotPrimaryNoSecondaryOk, "not primary and secondaryOk=false")
	}
	if ns == "local.oplog.rs" {
		var out []bson.D
		for _, e := range n.oplog {
			var d bson.D
			_ = decode(e, &d)
			out = append(out, d)
		}
		return out, nil
	}
	return c.docs(n, ns), nil
}

func (c *Cluster) find(n *node, req *request) (bson.D, error) {
	coll, _ := req.cmd[0].Value.(string)
	ns := req.db + "." + coll
	c.mu.Lock()
	defer c.mu.Unlock()
	all, err := c.readable(n, req, ns)
	if err != nil {
		return nil, err
	}
	filter, _ := lookup(req.cmd, "filter").(bson.D)
	var out bson.A
	for _, d := range all {
		m, err := matches(d, filter)
		if err != nil {
			return nil, err
		}
		if m {
			out = append(out, d)
		}
	}
	if sortDoc, _ := lookup(req.cmd, "sort").(bson.D); len(sortDoc) > 0 {
		dir, _ := asInt(sortDoc[0].Value)
		if sortDoc[0].Key != "$natural" {
			return nil, errf(codeBadValue, "mongofake sorts by $natural only")
		}
		if dir < 0 {
			for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	if limit, _ := asInt(lookup(req.cmd, "limit")); limit > 0 && int(limit) < len(out) {
		out = out[:limit]
	}
	if out == nil {
		out = bson.A{}
	}
	return append(bson.D{{Key: "cursor", Value: bson.D{{Key: "firstBatch", Value: out}, {Key: "id", Value: int64(0)}, {Key: "ns", Value: ns}}}}, ok()...), nil
}

func (c *Cluster) count(n *node, req *request) (bson.D, error) {
	coll, _ := req.cmd[0].Value.(string)
	c.mu.Lock()
	defer c.mu.Unlock()
	all, err := c.readable(n, req, req.db+"."+coll)
	if err != nil {
		return nil, err
	}
	query, _ := lookup(req.cmd, "query").(bson.D)
	cnt := int32(0)
	for _, d := range all {
		m, err := matches(d, query)
		if err != nil {
			return nil, err
		}
		if m {
			cnt++
		}
	}
	return append(bson.D{{Key: "n", Value: cnt}}, ok()...), nil
}
