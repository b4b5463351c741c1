package mongofake

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Wire protocol opcodes (https://www.mongodb.com/docs/manual/reference/mongodb-wire-protocol/).
const (
	opReply = 1
	opQuery = 2004
	opMsg   = 2013
)

// OP_MSG flag bits.
const (
	flagChecksumPresent = 1 << 0
	flagMoreToCome      = 1 << 1
)

const maxMessage = 48_000_000

type header struct {
	Length, RequestID, ResponseTo, OpCode int32
}

// request is one decoded client message: the command document (OP_MSG body with its
// document sequences folded in as arrays, or the OP_QUERY query) and how to answer.
type request struct {
	hdr       header
	cmd       bson.D
	db        string
	legacy    bool // OP_QUERY: answer with OP_REPLY
	noReply   bool // OP_MSG moreToCome: the client expects no answer
	secondary bool // the client allows reading from a secondary
}

func readRequest(r io.Reader) (*request, error) {
	var hb [16]byte
	if _, err := io.ReadFull(r, hb[:]); err != nil {
		return nil, err
	}
	h := header{
		Length:     int32(binary.LittleEndian.Uint32(hb[0:])),
		RequestID:  int32(binary.LittleEndian.Uint32(hb[4:])),
		ResponseTo: int32(binary.LittleEndian.Uint32(hb[8:])),
		OpCode:     int32(binary.LittleEndian.Uint32(hb[12:])),
	}
	if h.Length < 16 || h.Length > maxMessage {
		return nil, fmt.Errorf("message length %d out of range", h.Length)
	}
	body := make([]byte, h.Length-16)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	switch h.OpCode {
	case opMsg:
		return parseMsg(h, body)
	case opQuery:
		return parseQuery(h, body)
	}
	return nil, fmt.Errorf("unsupported opcode %d (this fake speaks OP_MSG and the OP_QUERY handshake)", h.OpCode)
}

func parseMsg(h header, b []byte) (*request, error) {
	if len(b) < 4 {
		return nil, errors.New("OP_MSG too short")
	}
	flags := binary.LittleEndian.Uint32(b)
	b = b[4:]
	if flags&flagChecksumPresent != 0 {
		if len(b) < 4 {
			return nil, errors.New("OP_MSG checksum missing")
		}
		b = b[:len(b)-4]
	}
	req := &request{hdr: h, noReply: flags&flagMoreToCome != 0}
	var seqs []bson.E
	for len(b) > 0 {
		kind := b[0]
		b = b[1:]
		switch kind {
		case 0:
			doc, rest, err := nextDoc(b)
			if err != nil {
				return nil, err
			}
			if err := bson.Unmarshal(doc, &req.cmd); err != nil {
				return nil, fmt.Errorf("OP_MSG body: %w", err)
			}
			b = rest
		case 1:
			if len(b) < 4 {
				return nil, errors.New("OP_MSG sequence too short")
			}
			size := int(binary.LittleEndian.Uint32(b))
			if size < 4 || size > len(b) {
				return nil, errors.New("OP_MSG sequence size out of range")
			}
			sec := b[4:size]
			b = b[size:]
			i := bytes.IndexByte(sec, 0)
			if i < 0 {
				return nil, errors.New("OP_MSG sequence identifier unterminated")
			}
			id := string(sec[:i])
			sec = sec[i+1:]
			var arr bson.A
			for len(sec) > 0 {
				doc, rest, err := nextDoc(sec)
				if err != nil {
					return nil, err
				}
				var d bson.D
				if err := bson.Unmarshal(doc, &d); err != nil {
					return nil, fmt.Errorf("OP_MSG sequence %s: %w", id, err)
				}
				arr = append(arr, d)
				sec = rest
			}
			seqs = append(seqs, bson.E{Key: id, Value: arr})
		default:
			return nil, fmt.Errorf("OP_MSG section kind %d unsupported", kind)
		}
	}
	if len(req.cmd) == 0 {
		return nil, errors.New("OP_MSG without a body")
	}
	req.cmd = append(req.cmd, seqs...)
	req.db, _ = lookup(req.cmd, "$db").(string)
	if rp, ok := lookup(req.cmd, "$readPreference").(bson.D); ok {
		mode, _ := lookup(rp, "mode").(string)
		req.secondary = mode != "" && mode != "primary"
	}
	return req, nil
}

func parseQuery(h header, b []byte) (*request, error) {
	if len(b) < 4 {
		return nil, errors.New("OP_QUERY too short")
	}
	flags := binary.LittleEndian.Uint32(b)
	b = b[4:]
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return nil, errors.New("OP_QUERY collection name unterminated")
	}
	coll := string(b[:i])
	b = b[i+1:]
	if len(b) < 8 {
		return nil, errors.New("OP_QUERY too short")
	}
	b = b[8:] // numberToSkip, numberToReturn
	doc, _, err := nextDoc(b)
	if err != nil {
		return nil, err
	}
	req := &request{hdr: h, legacy: true, secondary: flags&(1<<2) != 0}
	if err := bson.Unmarshal(doc, &req.cmd); err != nil {
		return nil, fmt.Errorf("OP_QUERY: %w", err)
	}
	if q, ok := lookup(req.cmd, "$query").(bson.D); ok {
		req.cmd = q
	}
	db, _, _ := bytes.Cut([]byte(coll), []byte("."))
	req.db = string(db)
	return req, nil
}

func nextDoc(b []byte) (doc, rest []byte, err error) {
	if len(b) < 5 {
		return nil, nil, errors.New("BSON document truncated")
	}
	n := int(binary.LittleEndian.Uint32(b))
	if n < 5 || n > len(b) {
		return nil, nil, errors.New("BSON document length out of range")
	}
	return b[:n], b[n:], nil
}

// writeReply answers req with doc: OP_REPLY to OP_QUERY, OP_MSG otherwise.
func writeReply(w io.Writer, req *request, requestID int32, doc bson.D) error {
	raw, err := bson.Marshal(doc)
	if err != nil {
		return err
	}
	var body []byte
	op := int32(opMsg)
	if req.legacy {
		op = opReply
		body = make([]byte, 20)
		binary.LittleEndian.PutUint32(body[16:], 1) // numberReturned
	} else {
		body = []byte{0, 0, 0, 0, 0} // flagBits, section kind 0
	}
	body = append(body, raw...)
	out := make([]byte, 16, 16+len(body))
	binary.LittleEndian.PutUint32(out[0:], uint32(16+len(body)))
	binary.LittleEndian.PutUint32(out[4:], uint32(requestID))
	binary.LittleEndian.PutUint32(out[8:], uint32(req.hdr.RequestID))
	binary.LittleEndian.PutUint32(out[12:], uint32(op))
	_, err = w.Write(append(out, body...))
	return err
}

// lookup returns the value of key in d (nil when absent).
func lookup(d bson.D, key string) any {
	for _, e := range d {
		if e.Key == key {
			return e.Value
		}
	}
	return nil
}

// decode re-marshals a decoded value into a typed struct.
func decode(v any, out any) error {
	raw, err := bson.Marshal(v)
	if err != nil {
		return err
	}
	return bson.Unmarshal(raw, out)
}

// asInt reads a numeric BSON value.
func asInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case float64:
		return int64(x), true
	}
	return 0, false
}

// truthy reads a BSON boolean or number as a boolean.
func truthy(v any) bool {
	if b, ok := v.(bool); ok {
		return b
	}
	n, ok := asInt(v)
	return ok && n != 0
}
