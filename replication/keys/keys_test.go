package keys

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestVersionAndVariantBits(t *testing.T) {
	g, err := NewGenerator("douala")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000; i++ {
		k, err := g.New()
		if err != nil {
			t.Fatal(err)
		}
		// RFC 9562 §5.7: octet 6 high nibble = 0111, octet 8 top bits = 10.
		if k.ID[6]>>4 != 0x7 {
			t.Fatalf("%s: version nibble %x, want 7", k.ID, k.ID[6]>>4)
		}
		if k.ID[8]>>6 != 0b10 {
			t.Fatalf("%s: variant bits %b, want 10", k.ID, k.ID[8]>>6)
		}
		if err := Validate(k.ID); err != nil {
			t.Fatal(err)
		}
		if k.Site != "douala" {
			t.Fatalf("site %q, want douala", k.Site)
		}
	}
}

func TestValidateRejectsOtherVersions(t *testing.T) {
	if err := Validate(uuid.New()); err == nil {
		t.Fatal("a UUIDv4 passed as UUIDv7")
	}
	var ncs uuid.UUID
	ncs[6] = 0x70 // version 7, variant bits 00 (NCS)
	if err := Validate(ncs); err == nil {
		t.Fatal("a version-7 UUID with the NCS variant passed")
	}
}

func TestTimestampAndOrdering(t *testing.T) {
	g, _ := NewGenerator("cloud")
	before := time.Now().UnixMilli()
	prev, _ := g.New()
	for i := 0; i < 10000; i++ {
		k, err := g.New()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Compare(prev.ID[:], k.ID[:]) >= 0 {
			t.Fatalf("key %d not after the previous one: %s then %s", i, prev.ID, k.ID)
		}
		prev = k
	}
	after := time.Now().UnixMilli()
	ms := UnixMilli(prev.ID)
	// google/uuid keeps keys strictly increasing with a 12-bit sub-millisecond
	// counter: minting faster than it ticks runs the clock ahead by at most one
	// millisecond per 4096 keys.
	ahead := int64(10001/4096 + 1)
	if ms < before || ms > after+ahead {
		t.Fatalf("timestamp %d outside [%d, %d]", ms, before, after+ahead)
	}
	// Keys minted a few milliseconds apart order by time.
	a, _ := g.New()
	time.Sleep(3 * time.Millisecond)
	b, _ := g.New()
	if UnixMilli(b.ID)-UnixMilli(a.ID) < 3 {
		t.Fatalf("timestamps %d and %d are less than 3 ms apart", UnixMilli(a.ID), UnixMilli(b.ID))
	}
}

func TestNoCollisionsUnderConcurrency(t *testing.T) {
	const workers, per = 16, 5000
	siteNames := []string{"douala", "yaounde", "cloud"}
	var mu sync.Mutex
	seen := make(map[uuid.UUID]string, workers*per)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		g, _ := NewGenerator(siteNames[w%len(siteNames)])
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]Key, 0, per)
			for i := 0; i < per; i++ {
				k, err := g.New()
				if err != nil {
					t.Error(err)
					return
				}
				local = append(local, k)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, k := range local {
				if prev, dup := seen[k.ID]; dup {
					t.Errorf("key %s minted twice (%s and %s)", k.ID, prev, k.Site)
				}
				seen[k.ID] = k.Site
			}
		}()
	}
	wg.Wait()
	if len(seen) != workers*per {
		t.Fatalf("%d distinct keys, want %d", len(seen), workers*per)
	}
}

func TestGeneratorNeedsSite(t *testing.T) {
	if _, err := NewGenerator(""); err == nil {
		t.Fatal("a generator without a site was accepted")
	}
}

func BenchmarkNew(b *testing.B) {
	g, _ := NewGenerator("douala")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.New(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewParallel(b *testing.B) {
	g, _ := NewGenerator("douala")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := g.New(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
