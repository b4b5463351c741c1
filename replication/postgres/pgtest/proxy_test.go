package pgtest

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// startup is a minimal PostgreSQL startup packet naming an application_name.
func startup(app string) []byte {
	body := []byte{0, 3, 0, 0}
	body = append(body, "user\x00u\x00application_name\x00"+app+"\x00\x00"...)
	pkt := make([]byte, 4, 4+len(body))
	binary.BigEndian.PutUint32(pkt, uint32(4+len(body)))
	return append(pkt, body...)
}

// echoServer answers each line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				var hdr [4]byte
				if _, err := io.ReadFull(c, hdr[:]); err != nil {
					return
				}
				if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(hdr[:])-4)); err != nil {
					return
				}
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return l.Addr().String()
}

func dialApp(t *testing.T, addr, app string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := c.Write(startup(app)); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

func roundTrip(c net.Conn, r *bufio.Reader, line string, wait time.Duration) (string, error) {
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	defer func() { _ = c.SetReadDeadline(time.Time{}) }()
	got, err := r.ReadString('\n')
	return got, err
}

// A partition holds the bytes of the named application's connections both ways and
// closes nothing; other connections pass; Heal delivers what was held, in order.
func TestProxyPartitionHoldsAndHeals(t *testing.T) {
	p, err := NewProxy("127.0.0.1:0", echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	cut, cutR := dialApp(t, p.Addr, "sitectl_douala_to_cloud")
	other, otherR := dialApp(t, p.Addr, "sitectl_yaounde_to_cloud")
	if got, err := roundTrip(cut, cutR, "before", 5*time.Second); err != nil || got != "before\n" {
		t.Fatalf("before the partition: %q, %v", got, err)
	}

	p.Partition("sitectl_douala_to_cloud")
	if got, err := roundTrip(cut, cutR, "held", 300*time.Millisecond); err == nil {
		t.Fatalf("an answer crossed the partition: %q", got)
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("the partition closed the connection: %v", err)
	}
	if got, err := roundTrip(other, otherR, "other", 5*time.Second); err != nil || got != "other\n" {
		t.Fatalf("a connection outside the partition: %q, %v", got, err)
	}

	p.Heal()
	_ = cut.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := cutR.ReadString('\n'); err != nil || got != "held\n" {
		t.Fatalf("after the heal the held line should arrive: %q, %v", got, err)
	}
	if got, err := roundTrip(cut, cutR, "after", 5*time.Second); err != nil || got != "after\n" {
		t.Fatalf("after the heal: %q, %v", got, err)
	}

	// Partition() with no names holds every connection, new ones too.
	p.Partition()
	if got, err := roundTrip(other, otherR, "all", 300*time.Millisecond); err == nil {
		t.Fatalf("an answer crossed a partition of every connection: %q", got)
	}
	p.Heal()
	_ = other.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := otherR.ReadString('\n'); err != nil || got != "all\n" {
		t.Fatalf("after the heal: %q, %v", got, err)
	}
}
