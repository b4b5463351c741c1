package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
)

// The deploy lock is a swarm config named LockName, created atomically (swarm
// refuses a second config of that name), labelled with who holds it and since when,
// and refreshed while the deploy runs. A lock whose holder stopped refreshing it, or
// whose holder process on this host is gone (a killed deploy), is stale and taken
// over; --force-unlock takes any lock.
const (
	LockName = "sitectl-lock"

	labelLock      = "sitectl.lock"
	labelOwner     = "sitectl.lock.owner"
	labelHost      = "sitectl.lock.host"
	labelPID       = "sitectl.lock.pid"
	labelToken     = "sitectl.lock.token"
	labelSince     = "sitectl.lock.since"
	labelHeartbeat = "sitectl.lock.heartbeat"
)

// Lock timing: the holder refreshes every LockRefresh; a lock not refreshed for
// LockStale is considered abandoned.
var (
	LockRefresh = 10 * time.Second
	LockStale   = 45 * time.Second
)

// ErrLocked is wrapped when another deploy holds the site.
var ErrLocked = errors.New("deploy in progress")

// LockHolder describes who holds a site's lock.
type LockHolder struct {
	Owner     string    `json:"owner"` // user@host pid N
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Since     time.Time `json:"since"`
	Heartbeat time.Time `json:"heartbeat"`
}

func (h LockHolder) String() string {
	return fmt.Sprintf("%s since %s (last refreshed %s ago)", h.Owner, h.Since.UTC().Format(time.RFC3339), time.Since(h.Heartbeat).Round(time.Second))
}

// stale reports whether the holder is gone: no refresh for LockStale, or a process
// of this host that no longer exists.
func (h LockHolder) stale(now time.Time) bool {
	if now.Sub(h.Heartbeat) > LockStale {
		return true
	}
	host, _ := os.Hostname()
	if h.Host == host && h.PID > 0 && h.PID != os.Getpid() {
		if err := syscall.Kill(h.PID, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
	}
	return false
}

func holderFrom(labels map[string]string) LockHolder {
	h := LockHolder{Owner: labels[labelOwner], Host: labels[labelHost]}
	h.PID, _ = strconv.Atoi(labels[labelPID])
	h.Since, _ = time.Parse(time.RFC3339Nano, labels[labelSince])
	h.Heartbeat, _ = time.Parse(time.RFC3339Nano, labels[labelHeartbeat])
	return h
}

// lock is a held deploy lock.
type lock struct {
	s     *session
	id    string
	token string
	stop  chan struct{}
	done  chan struct{}
}

// acquireLock takes the site's deploy lock or fails naming the holder.
func (s *session) acquireLock(ctx context.Context) (*lock, error) {
	host, _ := os.Hostname()
	who := "unknown"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	tok := make([]byte, 8)
	_, _ = rand.Read(tok)
	now := time.Now().UTC().Format(time.RFC3339Nano)
	labels := map[string]string{
		labelLock: "true", labelOwner: fmt.Sprintf("%s@%s pid %d", who, host, os.Getpid()), labelHost: host,
		labelPID: strconv.Itoa(os.Getpid()), labelToken: hex.EncodeToString(tok), labelSince: now, labelHeartbeat: now,
		"sitectl.site": s.site.Name,
	}
	spec := swarm.ConfigSpec{Annotations: swarm.Annotations{Name: LockName, Labels: labels},
		Data: []byte("sitectl deploy lock of " + s.site.Name + "; held by " + labels[labelOwner] + "\n")}
	for attempt := 0; attempt < 2; attempt++ {
		res, err := s.eng.ConfigCreate(ctx, client.ConfigCreateOptions{Spec: spec})
		if err == nil {
			l := &lock{s: s, id: res.ID, token: labels[labelToken], stop: make(chan struct{}), done: make(chan struct{})}
			go l.refresh()
			return l, nil
		}
		if !isConflict(err) {
			return nil, fmt.Errorf("take the deploy lock: %w", err)
		}
		cur, err := s.currentLock(ctx)
		if err != nil {
			return nil, err
		}
		if cur == nil {
			continue // released meanwhile
		}
		h := holderFrom(cur.Spec.Labels)
		switch {
		case s.opts.ForceUnlock:
			s.opts.Progress.Warnf("%s: --force-unlock: breaking the deploy lock held by %s", s.site.Name, h)
		case h.stale(time.Now()):
			s.opts.Progress.Warnf("%s: taking over a stale deploy lock of %s", s.site.Name, h)
		default:
			return nil, fmt.Errorf("%w on %s: held by %s; wait for it, or if that deploy is dead run again with --force-unlock", ErrLocked, s.site.Name, h)
		}
		if _, err := s.eng.ConfigRemove(ctx, cur.ID, client.ConfigRemoveOptions{}); err != nil && !isNotFound(err) {
			return nil, fmt.Errorf("break the deploy lock: %w", err)
		}
	}
	return nil, fmt.Errorf("%w on %s: another deploy took the lock meanwhile", ErrLocked, s.site.Name)
}

func (s *session) currentLock(ctx context.Context) (*swarm.Config, error) {
	res, err := s.eng.ConfigList(ctx, client.ConfigListOptions{Filters: make(client.Filters).Add("name", LockName)})
	if err != nil {
		return nil, fmt.Errorf("read the deploy lock: %w", err)
	}
	for _, c := range res.Items {
		if c.Spec.Name == LockName {
			return &c, nil
		}
	}
	return nil, nil
}

// LockStatus returns the holder of the site's lock, or nil.
func (s *session) lockStatus(ctx context.Context) (*LockHolder, error) {
	c, err := s.currentLock(ctx)
	if err != nil || c == nil {
		return nil, err
	}
	h := holderFrom(c.Spec.Labels)
	return &h, nil
}

func (l *lock) refresh() {
	defer close(l.done)
	t := time.NewTicker(LockRefresh)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if cur, err := l.s.eng.ConfigInspect(ctx, l.id, client.ConfigInspectOptions{}); err == nil {
				spec := cur.Config.Spec
				spec.Labels[labelHeartbeat] = time.Now().UTC().Format(time.RFC3339Nano)
				_, _ = l.s.eng.ConfigUpdate(ctx, l.id, client.ConfigUpdateOptions{Version: cur.Config.Version, Spec: spec})
			}
			cancel()
		}
	}
}

// release removes the lock if it is still ours.
func (l *lock) release(ctx context.Context) error {
	close(l.stop)
	<-l.done
	cur, err := l.s.eng.ConfigInspect(ctx, l.id, client.ConfigInspectOptions{})
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("release the deploy lock: %w", err)
	}
	if cur.Config.Spec.Labels[labelToken] != l.token {
		return nil
	}
	if _, err := l.s.eng.ConfigRemove(ctx, l.id, client.ConfigRemoveOptions{}); err != nil && !isNotFound(err) {
		return fmt.Errorf("release the deploy lock: %w", err)
	}
	return nil
}
