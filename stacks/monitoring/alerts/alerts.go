// Package alerts reads the alerts of the hub's Alertmanager through its v2 API
// (GET /api/v2/alerts), for `sitectl status`.
package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
)

// Alert is one alert Alertmanager holds.
type Alert struct {
	Name     string `json:"alertname"`
	Site     string `json:"site,omitempty"`
	Severity string `json:"severity,omitempty"`
	Summary  string `json:"summary,omitempty"`
	// State is active (notified), suppressed (silenced or inhibited) or unprocessed.
	State       string            `json:"state"`
	InhibitedBy []string          `json:"inhibited_by,omitempty"`
	SilencedBy  []string          `json:"silenced_by,omitempty"`
	StartsAt    time.Time         `json:"starts_at"`
	Labels      map[string]string `json:"labels"`
}

// Firing reports whether the alert is firing and not suppressed.
func (a Alert) Firing() bool { return a.State == "active" }

// Client reads one Alertmanager.
type Client struct {
	// URL is Alertmanager's base URL (http://host:9093).
	URL string
	// HTTP makes the requests (nil: a client with a 5 s timeout).
	HTTP *http.Client
}

// UnreachableError says Alertmanager could not be read.
type UnreachableError struct {
	URL string
	Err error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("alertmanager at %s cannot be reached: %v", e.URL, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// apiAlert is the part of the API's gettableAlert sitectl reads.
type apiAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	Status      struct {
		State       string   `json:"state"`
		InhibitedBy []string `json:"inhibitedBy"`
		SilencedBy  []string `json:"silencedBy"`
	} `json:"status"`
}

// Alerts returns every active alert, suppressed ones included (see State), sorted
// by site, name and start.
func (c Client) Alerts(ctx context.Context) ([]Alert, error) {
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Second}
	}
	u := strings.TrimSuffix(c.URL, "/") + "/api/v2/alerts?active=true&silenced=true&inhibited=true&unprocessed=true"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, &UnreachableError{URL: c.URL, Err: err}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, &UnreachableError{URL: c.URL, Err: err}
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, &UnreachableError{URL: c.URL, Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &UnreachableError{URL: c.URL, Err: fmt.Errorf("GET /api/v2/alerts: %s: %s", resp.Status, strings.TrimSpace(string(body)))}
	}
	var in []apiAlert
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, &UnreachableError{URL: c.URL, Err: fmt.Errorf("GET /api/v2/alerts: not Alertmanager's v2 answer: %w", err)}
	}
	out := make([]Alert, 0, len(in))
	for _, a := range in {
		out = append(out, Alert{
			Name: a.Labels["alertname"], Site: a.Labels["site"], Severity: a.Labels["severity"], Summary: a.Annotations["summary"],
			State: a.Status.State, InhibitedBy: a.Status.InhibitedBy, SilencedBy: a.Status.SilencedBy, StartsAt: a.StartsAt, Labels: a.Labels,
		})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Site != out[j].Site {
			return out[i].Site < out[j].Site
		}
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].StartsAt.Before(out[j].StartsAt)
	})
	return out, nil
}
