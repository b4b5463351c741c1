package pgtest

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy forwards TCP connections from its own address to a cluster, and can cut the
// link: Cut drops every open connection and refuses new ones until Heal, which is
// what a blocked port or a lost tunnel looks like to replication. CutApps cuts only
// the connections whose startup packet names one of the given application_names (a
// subscription's walreceiver uses the subscription's name), so one proxy in front of
// a publisher can cut the link to one subscriber and not the others. StallApps makes
// a link go silent instead: the connections of those application_names stop getting
// the server's answers from their first simple query on, and nothing is closed, which
// is what a partition that drops packets looks like mid-statement. Clients must
// not ask for TLS (sslmode=disable): the proxy reads the startup packet.
type Proxy struct {
	Addr   string
	target string
	l      net.Listener
	mu     sync.Mutex
	cut    bool
	apps   map[string]bool
	stall  map[string]bool
	conns  map[net.Conn]string // → application_name
	closed bool
	// Partition: every connection (frozenAll) or those of the frozen names wait
	// for thaw, which Heal closes.
	frozenAll bool
	frozen    map[string]bool
	thaw      chan struct{}
}

// NewProxy listens on listen (host:port, port 0 for any) and forwards to target.
func NewProxy(listen, target string) (*Proxy, error) {
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	p := &Proxy{Addr: l.Addr().String(), target: target, l: l, conns: map[net.Conn]string{}, apps: map[string]bool{}, stall: map[string]bool{},
		frozen: map[string]bool{}, thaw: make(chan struct{})}
	go p.serve()
	return p, nil
}

func (p *Proxy) serve() {
	for {
		in, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut || p.closed {
			p.mu.Unlock()
			_ = in.Close()
			continue
		}
		p.mu.Unlock()
		go p.forward(in)
	}
}

func (p *Proxy) forward(in net.Conn) {
	_ = in.SetReadDeadline(time.Now().Add(10 * time.Second))
	first, app, err := readStartup(in)
	_ = in.SetReadDeadline(time.Time{})
	if err != nil {
		_ = in.Close()
		return
	}
	p.gate(app) // a partition holds new connections too
	out, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = in.Close()
		return
	}
	p.mu.Lock()
	if p.cut || p.closed || p.apps[app] {
		p.mu.Unlock()
		_ = in.Close()
		_ = out.Close()
		return
	}
	p.conns[in], p.conns[out] = app, app
	stall := p.stall[app]
	p.mu.Unlock()
	if _, err := out.Write(first); err != nil {
		_ = in.Close()
		_ = out.Close()
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	var silent atomic.Bool // the server's answers are dropped
	go func() {            // client → server
		defer wg.Done()
		if stall {
			_ = copyMarkingQuery(out, in, &silent)
		} else {
			buf := make([]byte, 32<<10)
			for {
				n, err := in.Read(buf)
				if n > 0 {
					p.gate(app)
					if _, werr := out.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
		}
		_ = out.Close()
		_ = in.Close()
	}()
	go func() { // server → client
		defer wg.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := out.Read(buf)
			if n > 0 {
				p.gate(app)
			}
			if n > 0 && !silent.Load() {
				if _, werr := in.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		_ = in.Close()
		_ = out.Close()
	}()
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, in)
	delete(p.conns, out)
	p.mu.Unlock()
}

// Cut drops every connection through the proxy and refuses new ones.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		_ = c.Close()
	}
}

// CutApps drops and refuses the connections of the given application_names.
func (p *Proxy) CutApps(apps ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range apps {
		p.apps[a] = true
	}
	for c, app := range p.conns {
		if p.apps[app] {
			_ = c.Close()
		}
	}
}

// StallApps silences the connections of the given application_names made from now
// on, from their first simple query on.
func (p *Proxy) StallApps(apps ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range apps {
		p.stall[a] = true
	}
}

// Partition holds every byte, both ways, of the open and new connections of the
// given application_names (of every connection when none is given); nothing is
// closed. Heal ends it.
func (p *Proxy) Partition(apps ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(apps) == 0 {
		p.frozenAll = true
	}
	for _, a := range apps {
		p.frozen[a] = true
	}
}

// gate waits while a partition holds the connections of app.
func (p *Proxy) gate(app string) {
	for {
		p.mu.Lock()
		if p.closed || (!p.frozenAll && !p.frozen[app]) {
			p.mu.Unlock()
			return
		}
		thaw := p.thaw
		p.mu.Unlock()
		<-thaw
	}
}

// Heal lets every connection through again (held bytes first: connections a
// partition held carry on); stalled ones are closed.
func (p *Proxy) Heal() {
	p.mu.Lock()
	if !p.closed && (p.frozenAll || len(p.frozen) > 0) {
		p.frozenAll, p.frozen = false, map[string]bool{}
		close(p.thaw)
		p.thaw = make(chan struct{})
	}
	p.cut = false
	p.apps = map[string]bool{}
	for c, app := range p.conns {
		if p.stall[app] {
			_ = c.Close()
		}
	}
	p.stall = map[string]bool{}
	p.mu.Unlock()
}

// copyMarkingQuery copies the client's messages to the server, and sets silent
// before it forwards the first simple query ('Q'), so no answer to it gets through.
func copyMarkingQuery(dst io.Writer, src io.Reader, silent *atomic.Bool) error {
	var hdr [5]byte
	for {
		if _, err := io.ReadFull(src, hdr[:]); err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint32(hdr[1:]))
		if n < 4 {
			return io.ErrUnexpectedEOF
		}
		if hdr[0] == 'Q' {
			silent.Store(true)
		}
		if _, err := dst.Write(hdr[:]); err != nil {
			return err
		}
		if _, err := io.CopyN(dst, src, int64(n-4)); err != nil {
			return err
		}
	}
}

// readStartup reads the client's startup packet and returns it with its
// application_name.
func readStartup(c net.Conn) ([]byte, string, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, "", err
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if n < 8 || n > 1<<16 {
		return nil, "", io.ErrUnexpectedEOF
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(c, body); err != nil {
		return nil, "", err
	}
	app := ""
	fields := bytes.Split(body[4:], []byte{0})
	for i := 0; i+1 < len(fields); i += 2 {
		if string(fields[i]) == "application_name" {
			app = string(fields[i+1])
		}
	}
	return append(hdr[:], body...), app, nil
}

// Close stops the proxy.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if !p.closed {
		close(p.thaw) // release the connections a partition holds
	}
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	return p.l.Close()
}
