package mongo

import (
	"context"
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// BenchmarkAnalyze: the partition analysis of the example topology (it runs on
// every plan).
func BenchmarkAnalyze(b *testing.B) {
	topo := loadTopo(b, directLink)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Analyze(topo); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMajorityInsertFake: one w:majority insert through the driver against the
// in-process fake (3 members): the cost of the driver path the drills use, not a
// MongoDB figure.
func BenchmarkMajorityInsertFake(b *testing.B) {
	bk := backends(3)[0].make(b)
	ctx := context.Background()
	topo := topoOn(b, bk, nil)
	deploySites(ctx, b, topo, "cloud", "douala", "yaounde")
	c := connTo(b, topo)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if err := c.InsertMajority(ctx, bk.hosts[0], "bench", "rows", bson.D{{Key: "_id", Value: fmt.Sprint(i)}}, 0); err != nil {
			b.Fatal(err)
		}
	}
}
