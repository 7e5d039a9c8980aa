package probe

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"time"
)

// Schema identifies the JSON format written by WriteJSON. It changes only
// when a field is removed or changes meaning; fields may be added.
const Schema = "imapctl.probe/v1"

type jsonFinding struct {
	ID          string   `json:"id"`
	Area        string   `json:"area"`
	Severity    Severity `json:"severity"`
	Title       string   `json:"title"`
	Detail      string   `json:"detail,omitempty"`
	Endpoint    string   `json:"endpoint,omitempty"`
	Address     string   `json:"address,omitempty"`
	DurationMS  *float64 `json:"duration_ms,omitempty"`
	CouldNotRun bool     `json:"could_not_run,omitempty"`
}

type jsonReport struct {
	Schema      string         `json:"schema"`
	Target      string         `json:"target"`
	Kind        string         `json:"kind"`
	Started     string         `json:"started"`
	ElapsedMS   float64        `json:"elapsed_ms"`
	Worst       Severity       `json:"worst"`
	CouldNotRun bool           `json:"could_not_run"`
	Counts      map[string]int `json:"counts"`
	Endpoints   []Endpoint     `json:"endpoints"`
	Findings    []jsonFinding  `json:"findings"`
}

func millis(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1000
}

// MarshalJSON encodes a finding as in the "findings" array of the
// imapctl.probe/v1 schema, with Duration as "duration_ms".
func (f Finding) MarshalJSON() ([]byte, error) {
	return json.Marshal(f.toJSON())
}

func (f Finding) toJSON() jsonFinding {
	jf := jsonFinding{ID: f.ID, Area: f.Area, Severity: f.Severity, Title: f.Title, Detail: f.Detail,
		Endpoint: f.Endpoint, Address: f.Address, CouldNotRun: f.CouldNotRun}
	if f.Duration > 0 {
		ms := millis(f.Duration)
		jf.DurationMS = &ms
	}
	return jf
}

// WriteJSON writes the report in the imapctl.probe/v1 schema (see
// docs/probe.md), indented, followed by a newline.
func (r *Report) WriteJSON(w io.Writer) error {
	out := jsonReport{
		Schema:      Schema,
		Target:      r.Target,
		Kind:        r.Kind,
		Started:     r.Started.UTC().Format(time.RFC3339Nano),
		ElapsedMS:   millis(r.Elapsed),
		Worst:       r.Worst(),
		CouldNotRun: r.CouldNotRun(),
		Counts:      map[string]int{},
		Endpoints:   r.Endpoints,
		Findings:    []jsonFinding{},
	}
	if out.Endpoints == nil {
		out.Endpoints = []Endpoint{}
	}
	for _, s := range []Severity{OK, Info, Warn, Error, Skipped} {
		out.Counts[s.String()] = r.Count(s)
	}
	for _, f := range r.Findings {
		out.Findings = append(out.Findings, f.toJSON())
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Time      string      `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr"`
	Cases     []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

func seconds(d time.Duration) string {
	return fmt.Sprintf("%.3f", d.Seconds())
}

// WriteJUnit writes the report as JUnit XML for CI test reports: one
// <testsuite> per area and one <testcase> per finding, named by its ID and
// endpoint. Findings at or above failOn (the --fail-on threshold, so that
// the report agrees with ExitCode) become <failure>s; Skipped findings
// become <skipped>; all others pass, with their severity and text in
// <system-out>.
func (r *Report) WriteJUnit(w io.Writer, failOn Severity) error {
	suites := junitSuites{Name: "imapctl probe " + r.Target, Time: seconds(r.Elapsed)}
	byArea := map[string]*junitSuite{}
	var order []string
	for _, f := range r.Findings {
		s, ok := byArea[f.Area]
		if !ok {
			s = &junitSuite{Name: "probe." + f.Area, Timestamp: r.Started.UTC().Format("2006-01-02T15:04:05")}
			byArea[f.Area] = s
			order = append(order, f.Area)
		}
		name := f.ID
		if f.Endpoint != "" {
			name += " [" + f.Endpoint + "]"
		}
		if f.Address != "" {
			name += " @" + f.Address
		}
		c := junitCase{Name: name, Classname: "imapctl.probe." + f.Area, Time: seconds(f.Duration)}
		text := f.Title
		if f.Detail != "" {
			text += " — " + f.Detail
		}
		switch {
		case f.Severity == Skipped:
			c.Skipped = &junitMessage{Message: f.Title}
			if f.CouldNotRun {
				c.SystemOut = "skipped (could not run): " + text
			} else {
				c.SystemOut = "skipped: " + text
			}
			s.Skipped++
			suites.Skipped++
		case failOn != Skipped && f.Severity >= failOn:
			c.Failure = &junitMessage{Message: f.Title, Type: f.Severity.String(), Text: f.ID + ": " + text}
			s.Failures++
			suites.Failures++
		default:
			c.SystemOut = f.Severity.String() + ": " + text
		}
		s.Tests++
		suites.Tests++
		s.Cases = append(s.Cases, c)
	}
	for _, a := range order {
		s := byArea[a]
		var total time.Duration
		for _, f := range r.Findings {
			if f.Area == a {
				total += f.Duration
			}
		}
		s.Time = seconds(total)
		suites.Suites = append(suites.Suites, *s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(suites); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
