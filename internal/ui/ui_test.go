package ui

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestBytes(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"}, {5 << 20, "5.0 MiB"}, {3 << 30, "3.0 GiB"}} {
		if got := Bytes(tc.n); got != tc.want {
			t.Errorf("Bytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestTablePlainWhenNotTerminal(t *testing.T) {
	var buf bytes.Buffer
	out := Table(&buf, []string{"USER", "N"}, [][]string{{"alice", "1"}, {"bob", "22"}})
	if strings.Contains(out, "\x1b[") {
		t.Fatalf("escape codes in non-terminal output: %q", out)
	}
	for _, s := range []string{"USER", "alice", "bob", "22"} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
	if Status(&buf, "OK") != "OK" {
		t.Error("status coloured on a non-terminal")
	}
}

func TestProgressPlainLines(t *testing.T) {
	var buf bytes.Buffer
	p := NewProgress(&buf, ProgressOptions{Title: "copy", TotalItems: 10, TotalBytes: 10 << 10, Interval: 10 * time.Millisecond})
	p.SetActive("INBOX", "3/10")
	p.Add(3, 3<<10)
	time.Sleep(50 * time.Millisecond)
	p.SetActive("INBOX", "")
	p.Add(7, 7<<10)
	p.Done()
	out := buf.String()
	if !strings.Contains(out, "copy: 10/10 messages, 10.0 KiB/10.0 KiB") {
		t.Fatalf("final line missing:\n%s", out)
	}
	if !strings.Contains(out, "INBOX 3/10") {
		t.Fatalf("active folder never shown:\n%s", out)
	}
}
