package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Wire protocol opcodes.
const (
	opReply = 1
	opQuery = 2004
	opMsg   = 2013
)

// serveMongo answers the MongoDB wire protocol's handshake (hello / isMaster) and
// ping, so drivers and health checks connect; every other command fails with
// "not supported by the stand-in".
func serveMongo(l net.Listener) error {
	var connID int32
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		connID++
		go mongoConn(c, connID)
	}
}

func mongoConn(c net.Conn, id int32) {
	defer func() { _ = c.Close() }()
	for {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Minute))
		var hdr [16]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		size := int32(binary.LittleEndian.Uint32(hdr[0:]))
		reqID := int32(binary.LittleEndian.Uint32(hdr[4:]))
		op := int32(binary.LittleEndian.Uint32(hdr[12:]))
		if size < 16 || size > 48_000_000 {
			return
		}
		body := make([]byte, size-16)
		if _, err := io.ReadFull(c, body); err != nil {
			return
		}
		var cmd bson.Raw
		switch op {
		case opMsg:
			// flagBits, then section kind 0 holds the command document.
			if len(body) < 5 || body[4] != 0 {
				return
			}
			cmd = bson.Raw(body[5:])
		case opQuery:
			// flags, collection cstring, skip, return, query document.
			i := 4
			for i < len(body) && body[i] != 0 {
				i++
			}
			i += 1 + 8
			if i >= len(body) {
				return
			}
			cmd = bson.Raw(body[i:])
		default:
			return
		}
		if len(cmd) >= 4 {
			cmd = cmd[:binary.LittleEndian.Uint32(cmd)]
		}
		doc, err := bson.Marshal(mongoAnswer(cmd, id))
		if err != nil {
			return
		}
		var out []byte
		if op == opMsg {
			out = make([]byte, 16+4+1+len(doc))
			out[20] = 0
			copy(out[21:], doc)
			binary.LittleEndian.PutUint32(out[12:], opMsg)
		} else {
			out = make([]byte, 16+20+len(doc))
			binary.LittleEndian.PutUint32(out[32:], 1) // numberReturned
			copy(out[36:], doc)
			binary.LittleEndian.PutUint32(out[12:], opReply)
		}
		binary.LittleEndian.PutUint32(out[0:], uint32(len(out)))
		binary.LittleEndian.PutUint32(out[4:], uint32(reqID+1))
		binary.LittleEndian.PutUint32(out[8:], uint32(reqID))
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

func mongoAnswer(cmd bson.Raw, conn int32) bson.D {
	name := ""
	if elems, err := cmd.Elements(); err == nil && len(elems) > 0 {
		name = elems[0].Key()
	}
	switch name {
	case "hello", "isMaster", "ismaster":
		return bson.D{
			{Key: "helloOk", Value: true},
			{Key: "ismaster", Value: true},
			{Key: "isWritablePrimary", Value: true},
			{Key: "maxBsonObjectSize", Value: int32(16 * 1024 * 1024)},
			{Key: "maxMessageSizeBytes", Value: int32(48_000_000)},
			{Key: "maxWriteBatchSize", Value: int32(100_000)},
			{Key: "localTime", Value: time.Now()},
			{Key: "logicalSessionTimeoutMinutes", Value: int32(30)},
			{Key: "connectionId", Value: conn},
			{Key: "minWireVersion", Value: int32(0)},
			{Key: "maxWireVersion", Value: int32(21)},
			{Key: "readOnly", Value: false},
			{Key: "standin", Value: "sitectl lab stand-in for mongo 7.0: answers hello and ping only"},
			{Key: "ok", Value: 1.0},
		}
	case "ping", "buildInfo", "buildinfo":
		return bson.D{{Key: "ok", Value: 1.0}, {Key: "version", Value: "7.0.0-standin"}, {Key: "standin", Value: true}}
	}
	return bson.D{
		{Key: "ok", Value: 0.0},
		{Key: "errmsg", Value: fmt.Sprintf("command %q is not supported by the sitectl lab stand-in for mongo (no real MongoDB in the lab)", name)},
		{Key: "code", Value: int32(115)},
		{Key: "codeName", Value: "CommandNotSupported"},
	}
}
