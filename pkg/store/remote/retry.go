package remote

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"
)

// RetryPolicy says how transient failures are retried: after the n-th
// consecutive failure of an operation the pacer waits a random duration
// between half and all of min(BaseDelay·2ⁿ⁻¹, MaxDelay), then reconnects
// and tries again, up to MaxAttempts tries in a row. Progress (a message
// or a chunk of a message received) resets the count, so a long run over
// a connection that keeps dropping goes on as long as each connection gets
// something done.
type RetryPolicy struct {
	// MaxAttempts is the number of consecutive tries of one operation
	// (default 6); 1 disables retries.
	MaxAttempts int
	// BaseDelay is the wait after the first failure (default 500 ms).
	BaseDelay time.Duration
	// MaxDelay caps the wait (default 30 s).
	MaxDelay time.Duration
}

// Defaults for RetryPolicy's zero fields.
const (
	DefaultMaxAttempts = 6
	DefaultBaseDelay   = 500 * time.Millisecond
	DefaultMaxDelay    = 30 * time.Second
)

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = DefaultBaseDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = DefaultMaxDelay
	}
	if p.MaxDelay < p.BaseDelay {
		p.MaxDelay = p.BaseDelay
	}
	return p
}

// delay returns the wait after the n-th consecutive failure (n >= 1),
// with "equal jitter": half fixed, half random.
func (p RetryPolicy) delay(n int) time.Duration {
	d := p.BaseDelay
	for i := 1; i < n && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	half := d / 2
	return half + rand.N(d-half+1)
}

// pacer paces the retries of one operation. It is not safe for concurrent
// use; each operation makes its own.
type pacer struct {
	policy   RetryPolicy
	log      *slog.Logger
	failures int // consecutive failures since the last progress
	total    int // all failures, for the final error
	sleep    func(ctx context.Context, d time.Duration) error
}

func newPacer(p RetryPolicy, log *slog.Logger) *pacer {
	return &pacer{policy: p, log: log, sleep: sleepCtx}
}

// progress records that the operation got something done: the count of
// consecutive failures starts again.
func (p *pacer) progress() { p.failures = 0 }

// failed records a transient failure of op. It waits before the next
// attempt and returns nil, or returns the error to give up with: an
// ErrUnavailable wrapping err once the attempts are used up, or the
// context's error.
func (p *pacer) failed(ctx context.Context, op string, err error) error {
	p.failures++
	p.total++
	if p.failures >= p.policy.MaxAttempts {
		return &unavailableError{attempts: p.total, err: err}
	}
	d := p.policy.delay(p.failures)
	p.log.Warn("connection problem; retrying", "op", op, "attempt", p.failures+1,
		"max_attempts", p.policy.MaxAttempts, "delay", d.Round(time.Millisecond), "err", err)
	if serr := p.sleep(ctx, d); serr != nil {
		return serr
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
