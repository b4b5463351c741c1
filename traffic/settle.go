package traffic

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// settleInARow is how many answers in a row from the entry's own API make its
// gateway settled.
const settleInARow = 3

// WaitOwn waits until every entry's gateway serves /api from the entry's own site
// (settleInARow answers in a row to GET /api/ready, each 200 and served by that
// site), checking every interval for at most within. A drill's figures start from
// a settled gateway: before, a partition drill run right after a db-down counted
// the previous fault's failback (douala's clients served by cloud, with failures)
// in its own "before" and "during".
func WaitOwn(ctx context.Context, entries []Entry, within, interval time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for _, e := range entries {
		c := e.Client(min(2*time.Second, within), 1)
		inARow, last := 0, "no answer yet"
		for n := 0; inARow < settleInARow; n++ {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.URLs[n%len(e.URLs)]+"/api/ready", nil)
			if err != nil {
				return err
			}
			resp, err := c.Do(req)
			switch {
			case err != nil:
				inARow, last = 0, err.Error()
			default:
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
				_ = resp.Body.Close()
				site := servedBy(b)
				if resp.StatusCode == http.StatusOK && site == e.Site {
					inARow++
				} else {
					inARow, last = 0, fmt.Sprintf("%d served by %q", resp.StatusCode, site)
				}
			}
			if inARow >= settleInARow {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("site %s: its gateway did not serve /api from its own API within %s (last answer to GET /api/ready: %s): a previous fault may still be failing back, or its API is not ready; wait until %s's API answers, then run again",
					e.Site, within, last, e.Site)
			case <-time.After(interval):
			}
		}
	}
	return nil
}
