// Command migreport prints the comparison table of bench/migrate/run.sh
// from the raw results it saved: runs.tsv (one line per timed run, from
// /usr/bin/time), corpus.json and corpus-big.json (mkcorpus),
// check-TOOL-REP.json and checkbig-TOOL.json (migcheck) and
// imapctl-REP-dryrun.json (imapctl migrate --dry-run --json after the
// re-run). Figures are medians over the repetitions, with the range.
//
//	go run ./bench/migrate/migreport -dir bench/out/migrate
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// run is one timed command.
type run struct {
	tool, phase string
	rep         int
	wall, cpu   float64 // cpu: user+system of the tool's process tree
	rssKiB      int64
	serverCPU   float64 // Dovecot's processes during the run
	exit        int
}

type corpus struct {
	Count int   `json:"messages"`
	Bytes int64 `json:"bytes"`
}

type check struct {
	Exact          bool     `json:"exact"`
	MissingFolders []string `json:"missing_folders"`
	Total          struct {
		Source        int   `json:"source"`
		Target        int   `json:"target"`
		SourceBytes   int64 `json:"source_bytes"`
		TargetBytes   int64 `json:"target_bytes"`
		Missing       int   `json:"missing"`
		Extra         int   `json:"extra"`
		Altered       int   `json:"altered"`
		FlagsDiffer   int   `json:"flags_differ"`
		KeywordsLost  int   `json:"keywords_lost"`
		KeywordsExtra int   `json:"keywords_extra"`
		DateDiffers   int   `json:"date_differs"`
	} `json:"total"`
}

type dryRun struct {
	Totals struct {
		Copied  int `json:"copied"`
		Updated int `json:"updated"`
		Deleted int `json:"deleted"`
		Failed  int `json:"failed"`
	} `json:"totals"`
}

func main() {
	if err := mainErr(); err != nil {
		fmt.Fprintln(os.Stderr, "migreport: error:", err)
		os.Exit(1)
	}
}

func mainErr() error {
	dir := flag.String("dir", "bench/out/migrate", "the directory run.sh wrote its results to")
	flag.Parse()
	runs, err := readRuns(filepath.Join(*dir, "runs.tsv"))
	if err != nil {
		return err
	}
	var c corpus
	if err := readJSON(filepath.Join(*dir, "corpus.json"), &c); err != nil {
		return err
	}
	var tools []string
	for _, r := range runs {
		if !slices.Contains(tools, r.tool) {
			tools = append(tools, r.tool)
		}
	}
	// Bytes as IMAP clients see them (CRLF line ends), from a check.
	imapBytes := c.Bytes
	checks := map[string][]check{}
	for _, t := range tools {
		files, _ := filepath.Glob(filepath.Join(*dir, "check-"+t+"-[0-9]*.json"))
		slices.Sort(files)
		for _, f := range files {
			var ch check
			if err := readJSON(f, &ch); err != nil {
				return err
			}
			checks[t] = append(checks[t], ch)
			if ch.Total.SourceBytes > 0 {
				imapBytes = ch.Total.SourceBytes
			}
		}
	}

	full := func(t string) []run { return pick(runs, t, "full") }
	rerun := func(t string) []run { return pick(runs, t, "rerun") }
	ref := "dsync"
	refFull, refRe := median(walls(full(ref))), median(walls(rerun(ref)))

	fmt.Printf("Corpus: %d messages, %.1f MB (%.1f MB as served over IMAP). Median of %d runs per tool, range in brackets.\n\n",
		c.Count, float64(c.Bytes)/1e6, float64(imapBytes)/1e6, maxRep(runs))
	fmt.Println("| tool | full copy | msgs/s | MB/s | peak RSS | CPU (tool + Dovecot) | unchanged re-run | re-run peak RSS | time vs dsync (copy / re-run) |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for _, t := range tools {
		f, r := full(t), rerun(t)
		if len(f) == 0 {
			continue
		}
		w := median(walls(f))
		ratio := "—"
		if t != ref && refFull > 0 {
			ratio = fmt.Sprintf("%.2f× / %s", w/refFull, ratioOr(median(walls(r)), refRe))
		}
		failed := ""
		if n := failures(f) + failures(r); n > 0 {
			failed = fmt.Sprintf(" (%d runs exited non-zero)", n)
		}
		fmt.Printf("| %s%s | %s | %.0f | %.1f | %s | %.1f s + %.1f s | %s | %s | %s |\n",
			t, failed, secRange(walls(f)), float64(c.Count)/w, float64(imapBytes)/1e6/w,
			mib(maxRSS(f)), median(cpus(f)), median(serverCPUs(f)),
			secRange(walls(r)), mib(maxRSS(r)), ratio)
	}

	fmt.Println()
	fmt.Println("Correctness (migcheck: every message compared by SHA-256 of its bytes, flags, keywords, internal date; worst run; \"bytes altered\": same body, header changed):")
	fmt.Println()
	fmt.Println("| tool | messages on target | missing | extra | bytes altered | other system flags | lost keywords | other internal date | missing folders | exact |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, t := range tools {
		cs := checks[t]
		if len(cs) == 0 {
			continue
		}
		// The worst run: the one with the most differences.
		worst := cs[0]
		for _, ch := range cs[1:] {
			if diffs(ch) > diffs(worst) {
				worst = ch
			}
		}
		tt := worst.Total
		exact := "yes"
		if !worst.Exact {
			exact = "**no**"
		}
		fmt.Printf("| %s | %d / %d | %d | %d | %d | %d | %d | %d | %d | %s |\n", t, tt.Target, tt.Source, tt.Missing, tt.Extra,
			tt.Altered, tt.FlagsDiffer, tt.KeywordsLost, tt.DateDiffers, len(worst.MissingFolders), exact)
	}
	var big corpus
	if err := readJSON(filepath.Join(*dir, "corpus-big.json"), &big); err == nil && len(pick(runs, tools[0], "big")) > 0 {
		fmt.Printf("\nVery large messages: %d messages, %.1f MB in all (one attachment each), copied once:\n\n", big.Count, float64(big.Bytes)/1e6)
		fmt.Println("| tool | copy | peak RSS | exact |")
		fmt.Println("|---|---|---|---|")
		for _, t := range tools {
			b := pick(runs, t, "big")
			if len(b) == 0 {
				continue
			}
			exact := "—"
			var ch check
			if err := readJSON(filepath.Join(*dir, "checkbig-"+t+".json"), &ch); err == nil {
				exact = "yes"
				if !ch.Exact {
					exact = fmt.Sprintf("**no** (%d missing, %d altered)", ch.Total.Missing, ch.Total.Altered)
				}
			}
			status := ""
			if failures(b) > 0 {
				status = " (exited non-zero)"
			}
			fmt.Printf("| %s%s | %s | %s | %s |\n", t, status, secRange(walls(b)), mib(maxRSS(b)), exact)
		}
	}
	for _, t := range tools {
		if !strings.HasPrefix(t, "imapctl") {
			continue
		}
		files, _ := filepath.Glob(filepath.Join(*dir, t+"-[0-9]*-dryrun.json"))
		if len(files) == 0 {
			continue
		}
		zero := 0
		for _, f := range files {
			var d dryRun
			if err := readJSON(f, &d); err != nil {
				return err
			}
			if d.Totals.Copied == 0 && d.Totals.Updated == 0 && d.Totals.Deleted == 0 && d.Totals.Failed == 0 {
				zero++
			}
		}
		fmt.Printf("\n%s migrate --dry-run after the re-run: nothing left to copy or update in %d of %d runs.\n", t, zero, len(files))
	}
	return nil
}

func diffs(c check) int {
	t := c.Total
	return t.Missing + t.Extra + t.Altered + t.FlagsDiffer + t.KeywordsLost + t.KeywordsExtra + t.DateDiffers + 1000*len(c.MissingFolders)
}

func readRuns(name string) ([]run, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var out []run
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 9 || fl[0] == "tool" {
			continue
		}
		num := func(i int) float64 { v, _ := strconv.ParseFloat(fl[i], 64); return v }
		rep, _ := strconv.Atoi(fl[1])
		rss, _ := strconv.ParseInt(fl[6], 10, 64)
		exit, _ := strconv.Atoi(fl[8])
		phase := fl[2]
		if fl[1] == "big" {
			phase = "big" // the big-message account
		}
		out = append(out, run{tool: fl[0], rep: rep, phase: phase, wall: num(3), cpu: num(4) + num(5),
			rssKiB: rss, serverCPU: num(7), exit: exit})
	}
	return out, sc.Err()
}

func readJSON(name string, v any) error {
	b, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func pick(runs []run, tool, phase string) []run {
	var out []run
	for _, r := range runs {
		if r.tool == tool && r.phase == phase {
			out = append(out, r)
		}
	}
	return out
}

func walls(rs []run) []float64      { return field(rs, func(r run) float64 { return r.wall }) }
func cpus(rs []run) []float64       { return field(rs, func(r run) float64 { return r.cpu }) }
func serverCPUs(rs []run) []float64 { return field(rs, func(r run) float64 { return r.serverCPU }) }

func field(rs []run, f func(run) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func secRange(v []float64) string {
	if len(v) == 0 {
		return "—"
	}
	if len(v) == 1 {
		return fmt.Sprintf("%.2f s", v[0])
	}
	return fmt.Sprintf("%.2f s [%.2f–%.2f]", median(v), slices.Min(v), slices.Max(v))
}

func ratioOr(a, b float64) string {
	if a == 0 || b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func maxRSS(rs []run) int64 {
	var m int64
	for _, r := range rs {
		m = max(m, r.rssKiB)
	}
	return m
}

func mib(kib int64) string {
	if kib == 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f MiB", float64(kib)/1024)
}

func failures(rs []run) int {
	n := 0
	for _, r := range rs {
		if r.exit != 0 {
			n++
		}
	}
	return n
}

func maxRep(rs []run) int {
	m := 0
	for _, r := range rs {
		m = max(m, r.rep)
	}
	return m
}
