package ui

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// ProgressOptions configure a Progress.
type ProgressOptions struct {
	Title      string // e.g. "migrate"
	TotalItems int64  // messages
	TotalBytes int64
	// Bar draws a progress bar (callers pass IsTerminal(w) && !json && !quiet);
	// otherwise a plain line is printed every Interval.
	Bar      bool
	Interval time.Duration // plain mode; default 5 s
}

// Progress reports the progress of a long job on w (stderr): a bar with
// bytes, count, rate and ETA plus one row per active unit (folder) on a
// terminal, periodic plain lines otherwise. Done must be called; it stops
// the ticker goroutine it owns.
type Progress struct {
	w    io.Writer
	opts ProgressOptions
	bar  *progressbar.ProgressBar

	mu     sync.Mutex
	items  int64
	bytes  int64
	active map[string]string
	start  time.Time
	stop   chan struct{}
	done   sync.WaitGroup
}

// NewProgress starts reporting.
func NewProgress(w io.Writer, opts ProgressOptions) *Progress {
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	p := &Progress{w: w, opts: opts, active: map[string]string{}, start: time.Now(), stop: make(chan struct{})}
	if opts.Bar {
		p.bar = progressbar.NewOptions64(max(opts.TotalBytes, 1),
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(opts.Title),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(30),
			progressbar.OptionEnableColorCodes(Color(w)),
			progressbar.OptionSetMaxDetailRow(4),
			progressbar.OptionSetRenderBlankState(true),
		)
		return p
	}
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		t := time.NewTicker(opts.Interval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				_, _ = fmt.Fprintln(w, p.line()) // progress is best effort
			}
		}
	}()
	return p
}

// Add records finished items and bytes.
func (p *Progress) Add(items, bytes int64) {
	p.mu.Lock()
	p.items += items
	p.bytes += bytes
	desc := p.describeLocked()
	p.mu.Unlock()
	if p.bar != nil {
		p.bar.Describe(desc)
		_ = p.bar.Add64(bytes)
	}
}

// AddTotal grows the totals as work is discovered (e.g. per folder).
func (p *Progress) AddTotal(items, bytes int64) {
	p.mu.Lock()
	p.opts.TotalItems += items
	p.opts.TotalBytes += bytes
	first := p.opts.TotalBytes == bytes
	p.mu.Unlock()
	if p.bar != nil {
		if first {
			p.bar.ChangeMax64(max(bytes, 1))
		} else {
			p.bar.AddMax64(bytes)
		}
	}
}

// SetActive sets (or with status "" removes) a unit's status line, e.g.
// SetActive("INBOX", "1200/5000").
func (p *Progress) SetActive(name, status string) {
	p.mu.Lock()
	if status == "" {
		delete(p.active, name)
	} else {
		p.active[name] = status
	}
	rows := p.rowsLocked()
	p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Clear()
		for _, r := range rows {
			_ = p.bar.AddDetail(r)
		}
	}
}

func (p *Progress) rowsLocked() []string {
	names := make([]string, 0, len(p.active))
	for n := range p.active {
		names = append(names, n)
	}
	sort.Strings(names)
	rows := make([]string, 0, len(names))
	for _, n := range names {
		rows = append(rows, fmt.Sprintf("  %-30s %s", n, p.active[n]))
	}
	return rows
}

func (p *Progress) describeLocked() string {
	return fmt.Sprintf("%s %d/%d msgs", p.opts.Title, p.items, p.opts.TotalItems)
}

func (p *Progress) line() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	el := time.Since(p.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(p.bytes) / el
	}
	s := fmt.Sprintf("%s: %d/%d messages, %s/%s, %s/s", p.opts.Title, p.items, p.opts.TotalItems,
		Bytes(p.bytes), Bytes(p.opts.TotalBytes), Bytes(int64(rate)))
	if rate > 0 && p.opts.TotalBytes > p.bytes {
		eta := time.Duration(float64(p.opts.TotalBytes-p.bytes)/rate) * time.Second
		s += fmt.Sprintf(", ETA %s", eta.Round(time.Second))
	}
	if len(p.active) > 0 {
		var parts []string
		for _, r := range p.rowsLocked() {
			parts = append(parts, strings.Join(strings.Fields(r), " "))
		}
		s += " [" + strings.Join(parts, "; ") + "]"
	}
	return s
}

// Done stops reporting and prints a final line in plain mode.
func (p *Progress) Done() {
	if p.bar != nil {
		_ = p.bar.Finish()
		_, _ = fmt.Fprintln(p.w) // progress is best effort
		return
	}
	close(p.stop)
	p.done.Wait()
	_, _ = fmt.Fprintln(p.w, p.line())
}

// Bytes formats a byte count with binary units.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
