package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"time"
)

// Notification is one webhook post Alertmanager made, as a recording receiver (the
// lab's, see lab/receiver.go) kept it.
type Notification struct {
	// At is when the receiver got it.
	At time.Time
	// Authorized says the post carried the bearer token the receiver expects.
	Authorized bool
	// Status is the group's: firing while any alert fires, else resolved.
	Status string
	Alerts []Notified
}

// Notified is one alert of a notification.
type Notified struct {
	Status string            `json:"status"` // firing | resolved
	Labels map[string]string `json:"labels"`
}

// Receiver reads a recording webhook receiver: GET <URL>/received answers every
// post it got, oldest first, as [{received_at, authorized, payload}] (payload is
// Alertmanager's webhook JSON).
type Receiver struct {
	URL  string
	HTTP *http.Client
}

type recorded struct {
	ReceivedAt float64 `json:"received_at"` // Unix seconds
	Authorized bool    `json:"authorized"`
	Payload    struct {
		Status string     `json:"status"`
		Alerts []Notified `json:"alerts"`
	} `json:"payload"`
}

// HTTPOrDefault is r.HTTP, or a client with a 5 s timeout.
func (r Receiver) HTTPOrDefault() *http.Client {
	if r.HTTP != nil {
		return r.HTTP
	}
	return &http.Client{Timeout: 5 * time.Second}
}

// Received returns every notification the receiver got.
func (r Receiver) Received(ctx context.Context) ([]Notification, error) {
	hc := r.HTTPOrDefault()
	u := strings.TrimSuffix(r.URL, "/") + "/received"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("alert receiver at %s cannot be reached: %w", r.URL, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("alert receiver at %s: %w", r.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("alert receiver at %s: GET /received: %s", r.URL, resp.Status)
	}
	var in []recorded
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, fmt.Errorf("alert receiver at %s: GET /received: not a list of recorded posts: %w", r.URL, err)
	}
	out := make([]Notification, 0, len(in))
	for _, x := range in {
		sec, frac := math.Modf(x.ReceivedAt)
		out = append(out, Notification{At: time.Unix(int64(sec), int64(frac*1e9)), Authorized: x.Authorized,
			Status: x.Payload.Status, Alerts: x.Payload.Alerts})
	}
	return out, nil
}
