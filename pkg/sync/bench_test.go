package sync

import (
	"testing"

	"github.com/imapctl/imapctl/internal/testmail"
)

const benchMessages = 2000

// BenchmarkSync copies 2,000 messages from one Maildir into an empty one
// (no fsync) and reports messages per second.
func BenchmarkSync(b *testing.B) {
	src := newMaildir(b, "")
	seed(b, src, testmail.Generate(testmail.Options{Seed: 1, Count: benchMessages}))
	var bytes int64
	for b.Loop() {
		b.StopTimer()
		dst := newMaildir(b, "")
		b.StartTimer()
		rep := run(b, src, dst, Options{})
		if rep.Totals.Copied != benchMessages {
			b.Fatalf("copied %d", rep.Totals.Copied)
		}
		bytes = rep.Totals.Bytes
	}
	b.SetBytes(bytes)
	b.ReportMetric(float64(benchMessages*b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkResync re-runs an unchanged 2,000-message sync with its state.
func BenchmarkResync(b *testing.B) {
	src, dst := newMaildir(b, ""), newMaildir(b, "")
	seed(b, src, testmail.Generate(testmail.Options{Seed: 1, Count: benchMessages}))
	opts := Options{StateDir: b.TempDir()}
	run(b, src, dst, opts)
	for b.Loop() {
		if rep := run(b, src, dst, opts); rep.Totals.Copied != 0 {
			b.Fatalf("copied %d", rep.Totals.Copied)
		}
	}
	b.ReportMetric(float64(benchMessages*b.N)/b.Elapsed().Seconds(), "msgs/s")
}
