// Command report prints the comparison tables (Markdown) of a bench/run.sh
// run from the JSON files it left in a directory.
//
//	go run ./bench/report -dir bench/out
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/imapctl/imapctl/bench/internal/load"
)

var servers = []string{"imapctl", "dovecot"}

func main() {
	dir := flag.String("dir", "bench/out", "directory with the results of bench/run.sh")
	flag.Parse()
	var out bytes.Buffer
	for _, tr := range []string{"plain", "tls"} {
		loadTable(&out, *dir, tr)
	}
	idleTable(&out, *dir)
	bigTable(&out, *dir)
	if _, err := out.WriteTo(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func readJSON(path string, v any) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	if err := json.Unmarshal(data, v); err != nil {
		fmt.Fprintf(os.Stderr, "report: %s: %v\n", path, err)
		return false
	}
	return true
}

func loadTable(w *bytes.Buffer, dir, tr string) {
	res := map[string]*load.Result{}
	for _, s := range servers {
		var r load.Result
		if readJSON(filepath.Join(dir, fmt.Sprintf("load-%s-%s.json", s, tr)), &r) {
			res[s] = &r
		}
	}
	if len(res) == 0 {
		return
	}
	any := res["imapctl"]
	if any == nil {
		any = res["dovecot"]
	}
	fmt.Fprintf(w, "\n### Mixed load, %d clients, %.0f s, %s\n\n", any.Clients, any.Elapsed, map[string]string{"plain": "plaintext", "tls": "implicit TLS"}[tr])
	fmt.Fprintln(w, "| command | imapctl ops/s | imapctl p50 ms | imapctl p99 ms | Dovecot ops/s | Dovecot p50 ms | Dovecot p99 ms |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|")
	for i, name := range load.Commands {
		fmt.Fprintf(w, "| %s |", name)
		for _, s := range servers {
			r := res[s]
			if r == nil || i >= len(r.Commands) {
				fmt.Fprint(w, " – | – | – |")
				continue
			}
			c := r.Commands[i]
			fmt.Fprintf(w, " %.1f | %.2f | %.2f |", c.OpsPerS, c.P50ms, c.P99ms)
		}
		fmt.Fprintln(w)
	}
	row := func(label string, f func(r *load.Result) string) {
		fmt.Fprintf(w, "| **%s** |", label)
		for _, s := range servers {
			if r := res[s]; r != nil {
				fmt.Fprintf(w, " **%s** | | |", f(r))
			} else {
				fmt.Fprint(w, " – | | |")
			}
		}
		fmt.Fprintln(w)
	}
	row("all IMAP commands, ops/s", func(r *load.Result) string { return fmt.Sprintf("%.0f", r.OpsPerS) })
	row("errors", func(r *load.Result) string { return fmt.Sprint(r.Errors) })
	row("server CPU ms per command", func(r *load.Result) string { return fmt.Sprintf("%.3f", r.CPUmsPerOp) })
	row("server memory after (RSS / PSS MiB)", func(r *load.Result) string {
		return fmt.Sprintf("%.0f / %.0f", float64(r.ServerRSSKiB)/1024, float64(r.ServerPSSKiB)/1024)
	})
}

type idleResult struct {
	Label      string  `json:"label"`
	Conns      int     `json:"conns"`
	Failed     int     `json:"failed"`
	Setup      float64 `json:"setup_s"`
	RSSPerConn float64 `json:"rss_kib_per_conn"`
	PSSPerConn float64 `json:"pss_kib_per_conn"`
	IdleCPU    float64 `json:"idle_cpu_percent"`
	MarginalR  float64 `json:"marginal_rss_kib_per_conn"`
	MarginalP  float64 `json:"marginal_pss_kib_per_conn"`
	Steps      []struct {
		Conns  int   `json:"conns"`
		RSSKiB int64 `json:"rss_kib"`
	} `json:"steps"`
	Before struct {
		Procs  int   `json:"procs"`
		RSSKiB int64 `json:"rss_kib"`
		PSSKiB int64 `json:"pss_kib"`
	} `json:"before"`
	After struct {
		Procs  int   `json:"procs"`
		RSSKiB int64 `json:"rss_kib"`
		PSSKiB int64 `json:"pss_kib"`
	} `json:"after"`
}

func idleTable(w *bytes.Buffer, dir string) {
	header := false
	for _, tr := range []string{"plain", "tls"} {
		for _, s := range servers {
			var r idleResult
			if !readJSON(filepath.Join(dir, fmt.Sprintf("idle-%s-%s.json", s, tr)), &r) {
				continue
			}
			if !header {
				fmt.Fprintln(w, "\n### Idle connections (LOGIN, SELECT INBOX, IDLE)")
				fmt.Fprintln(w)
				fmt.Fprintln(w, "| server | transport | connections held | processes | RSS before → after (MiB) | RSS KiB/conn | PSS KiB/conn | marginal RSS KiB/conn | CPU while idle (% of a core) |")
				fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|")
				header = true
			}
			marginal := "–"
			if k := len(r.Steps); k > 0 {
				marginal = fmt.Sprintf("%.1f (%d → %d)", r.MarginalR, r.Steps[k-1].Conns, r.Conns-r.Failed)
			}
			fmt.Fprintf(w, "| %s | %s | %d of %d | %d → %d | %.1f → %.1f | %.1f | %.1f | %s | %.1f |\n", s, tr, r.Conns-r.Failed, r.Conns,
				r.Before.Procs, r.After.Procs, float64(r.Before.RSSKiB)/1024, float64(r.After.RSSKiB)/1024, r.RSSPerConn, r.PSSPerConn, marginal, r.IdleCPU)
		}
	}
}

type bigResult struct {
	Messages       uint32  `json:"messages"`
	FirstSelectMs  float64 `json:"first_select_ms"`
	SelectMs       float64 `json:"select_ms"`
	NewConnSelect  float64 `json:"new_conn_select_ms"`
	FetchFlagsMs   float64 `json:"fetch_flags_ms"`
	FirstSearchMs  float64 `json:"first_search_ms"`
	SearchMs       float64 `json:"search_ms"`
	SearchHits     int     `json:"search_hits"`
	RSSSelectedKiB int64   `json:"rss_selected_kib"`
	PSSSelectedKiB int64   `json:"pss_selected_kib"`
	Append1PerS    float64 `json:"append_1conn_msgs_per_s"`
	AppendNPerS    float64 `json:"append_nconn_msgs_per_s"`
	AppendConns    int     `json:"append_conns"`
}

func bigTable(w *bytes.Buffer, dir string) {
	res := map[string]*bigResult{}
	for _, s := range servers {
		var r bigResult
		if readJSON(filepath.Join(dir, fmt.Sprintf("bigbox-%s.json", s)), &r) {
			res[s] = &r
		}
	}
	if len(res) == 0 {
		return
	}
	n := uint32(0)
	for _, r := range res {
		n = r.Messages
	}
	fmt.Fprintf(w, "\n### Large mailbox (%d messages), over IMAP to the running servers\n\n", n)
	fmt.Fprintln(w, "| measure | target (imapctl) | imapctl | Dovecot |")
	fmt.Fprintln(w, "|---|---|--:|--:|")
	row := func(name, target string, f func(r *bigResult) string) {
		fmt.Fprintf(w, "| %s | %s |", name, target)
		for _, s := range servers {
			if r := res[s]; r != nil {
				fmt.Fprintf(w, " %s |", f(r))
			} else {
				fmt.Fprint(w, " – |")
			}
		}
		fmt.Fprintln(w)
	}
	ms := func(v float64) string { return fmt.Sprintf("%.1f ms", v) }
	row("first SELECT after start", "", func(r *bigResult) string { return ms(r.FirstSelectMs) })
	row("SELECT on a new connection, no other session of the user (median)", "< 50 ms", func(r *bigResult) string { return ms(r.NewConnSelect) })
	row("SELECT again on the same connection (median)", "< 50 ms", func(r *bigResult) string { return ms(r.SelectMs) })
	row("UID FETCH 1:* (FLAGS UID RFC822.SIZE)", "< 500 ms", func(r *bigResult) string { return ms(r.FetchFlagsMs) })
	row("first UID SEARCH HEADER Subject", "", func(r *bigResult) string { return fmt.Sprintf("%s (%d hits)", ms(r.FirstSearchMs), r.SearchHits) })
	row("UID SEARCH HEADER Subject (median)", "", func(r *bigResult) string { return ms(r.SearchMs) })
	row("server RSS, mailbox selected", "< 100 MB", func(r *bigResult) string {
		return fmt.Sprintf("%.1f MiB (PSS %.1f)", float64(r.RSSSelectedKiB)/1024, float64(r.PSSSelectedKiB)/1024)
	})
	row("durable APPEND, 1 connection", "> 1,000 msgs/s", func(r *bigResult) string { return fmt.Sprintf("%.0f msgs/s", r.Append1PerS) })
	c := 4
	for _, r := range res {
		c = r.AppendConns
	}
	row(fmt.Sprintf("durable APPEND, %d connections", c), "more than 1 connection", func(r *bigResult) string { return fmt.Sprintf("%.0f msgs/s", r.AppendNPerS) })
}
